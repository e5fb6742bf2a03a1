"""``python -m byhand.data prepare``: the offline MNIST preparation (:mod:`byhand.data.prepare`)."""

from byhand.data.prepare import main

raise SystemExit(main())
