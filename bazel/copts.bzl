"""The compiler flags every twinloop target carries.

twinloop is C++20 (coroutines, designated initializers, constinit): its
targets set the standard themselves, so a project that depends on twinloop
builds them with no flags of its own. Code that includes twinloop's headers
needs C++20 too; a consumer's own targets can use the same constant:

    load("@twinloop//bazel:copts.bzl", "TWINLOOP_COPTS")
    cc_binary(name = "app", srcs = ["app.cc"], copts = TWINLOOP_COPTS, ...)

Warnings are not here (they are the including project's choice): twinloop's
own .bazelrc adds -Wall -Wextra, and --config=werror makes them errors.
"""

TWINLOOP_COPTS = ["-std=c++20"]
