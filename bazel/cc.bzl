"""cc_library, cc_binary and cc_test for twinloop's own BUILD files: Bazel's
rules with TWINLOOP_COPTS (copts.bzl) first in copts, so every twinloop target
carries the C++ standard it needs and a project that depends on twinloop
builds it with no flags of its own.

    load("//bazel:cc.bzl", "cc_binary", "cc_library", "cc_test")
"""

load("@rules_cc//cc:defs.bzl", _cc_binary = "cc_binary", _cc_library = "cc_library", _cc_test = "cc_test")
load(":copts.bzl", "TWINLOOP_COPTS")

def cc_library(copts = [], **kwargs):
    _cc_library(copts = TWINLOOP_COPTS + copts, **kwargs)

def cc_binary(copts = [], **kwargs):
    _cc_binary(copts = TWINLOOP_COPTS + copts, **kwargs)

def cc_test(copts = [], **kwargs):
    _cc_test(copts = TWINLOOP_COPTS + copts, **kwargs)
