/* Backprop by Hand: names for the controls the theme's scripts create, so that a screen
   reader (and voice control) hears what the screen shows. */
(function () {
  "use strict";

  const whenReady = (callback) => {
    if (document.readyState !== "loading") callback();
    else document.addEventListener("DOMContentLoaded", callback);
  };

  /* A solution's toggle is named after its exercise: "Show solution to Exercise 5.2",
     then "Hide solution to Exercise 5.2" once it is open. sphinx-togglebutton calls every
     one "Toggle hidden content". */
  const toggleName = (button) => {
    const title = button.closest(".admonition-title");
    if (!title) return null;
    const text = Array.from(title.childNodes)
      .filter((node) => node !== button)
      .map((node) => node.textContent)
      .join("")
      .replace(/\s+/g, " ")
      .trim();
    const solution = text.match(/^Solution to ((?:Exercise|Appendix) [A-Z0-9.]+)/);
    const what = solution ? `solution to ${solution[1]}` : text.replace(/^./, (c) => c.toLowerCase());
    return what || "hidden content";
  };

  const nameToggle = (button) => {
    const what = toggleName(button);
    if (!what) return;
    const open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-label", `${open ? "Hide" : "Show"} ${what}`);
  };

  const nameToggles = () => {
    const buttons = document.querySelectorAll("button.toggle-button");
    buttons.forEach(nameToggle);
    const observer = new MutationObserver((mutations) => {
      mutations.forEach((m) => nameToggle(m.target));
    });
    buttons.forEach((b) => observer.observe(b, { attributes: true, attributeFilter: ["aria-expanded"] }));
  };

  /* The search button shows "Search" and a keyboard shortcut; its name says the same. */
  const nameSearchButtons = () => {
    document.querySelectorAll("button.search-button-field").forEach((button) => {
      const visible = button.innerText.replace(/\s+/g, " ").trim();
      if (visible) button.setAttribute("aria-label", visible);
    });
  };

  /* Output whose lines are sentences (an assert_close verdict, a printed message) wraps
     on a narrow screen; output laid out in columns (a tensor, a table) keeps its lines
     and scrolls, since wrapping would break its alignment. */
  const wrapProseOutput = () => {
    document.querySelectorAll("div.cell_output pre").forEach((pre) => {
      const lines = pre.textContent.replace(/\n$/, "").split("\n");
      const indented = lines.slice(1).some((line) => /^\s/.test(line));
      const columns = lines.filter((line) => /\S {2,}\S/.test(line)).length >= 2;
      if (!indented && !columns) pre.classList.add("book-wrap");
    });
  };

  /* A box that scrolls sideways (a long equation, a wide output) can be reached and
     scrolled with the keyboard. MathJax typesets lazily, so equations are looked at again
     whenever new ones appear. */
  const SCROLLERS = "div.math > mjx-container, div.cell_output pre, div.highlight pre";
  const addTabStops = () => {
    document.querySelectorAll(SCROLLERS).forEach((el) => {
      if (el.scrollWidth > el.clientWidth + 1 && el.tabIndex < 0) {
        el.setAttribute("tabindex", "0");
      }
    });
  };
  const watchScrollers = () => {
    addTabStops();
    let pending = null;
    const later = () => {
      if (pending === null) pending = window.setTimeout(() => { pending = null; addTabStops(); }, 100);
    };
    const main = document.querySelector("main") || document.body;
    // New maths, or a solution shown by sphinx-togglebutton (a class change).
    new MutationObserver(later).observe(main, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["class", "open"],
    });
    window.addEventListener("resize", later);
    // An opened <details> (a folded cell, a solution) may hold a box that scrolls.
    document.addEventListener("toggle", addTabStops, true);
    document.addEventListener("click", later, true);
  };

  /* Measuring every box lays out the whole page, code blocks off screen included, so the
     first look waits until the page has loaded and the browser is idle: it does not hold
     up the first screen or MathJax. */
  const whenLoadedAndIdle = (callback) => {
    const idle = () => (window.requestIdleCallback
      ? window.requestIdleCallback(callback, { timeout: 500 })
      : window.setTimeout(callback, 0));
    if (document.readyState === "complete") idle();
    else window.addEventListener("load", idle, { once: true });
  };

  whenReady(() => {
    wrapProseOutput();
    whenLoadedAndIdle(watchScrollers);
    // After sphinx-togglebutton, which adds its buttons on DOMContentLoaded too.
    window.setTimeout(() => {
      nameToggles();
      nameSearchButtons();
    }, 0);
  });
})();
