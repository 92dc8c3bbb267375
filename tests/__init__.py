"""The test suite: a package, so pytest (--import-mode=importlib) names its modules tests.* and none of them
takes a top-level name such as `kernels` or `ops` that an installed distribution may own."""
