"""twinloop's version, for Bazel. The VERSION file at the repository root holds
the same string (CMake's project(VERSION) reads it); //tools:version_test
checks that the two agree."""

TWINLOOP_VERSION = "0.1.0"
