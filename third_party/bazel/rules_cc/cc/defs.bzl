"""Offline stand-in for @rules_cc//cc:defs.bzl: re-exports Bazel 4.2.3's native C++ rules.

@bazel_tools//tools/cpp loads this file too, so it must exist even without project code."""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
