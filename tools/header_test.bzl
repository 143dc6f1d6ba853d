"""header_test: every public header of a package compiles on its own.

As asio's unit tests do, each header gets a translation unit of its own that
includes it first (so a header that forgets an #include of its own fails to
compile), plus one empty GoogleTest case named after it, so that the test
reports how many headers it checked.

    load("//tools:header_test.bzl", "header_test")
    header_test(
        name = "headers_test",
        hdrs = glob(["*.h"]),
        prefix = "twinloop/api",
        deps = [":api"],
    )
"""

load("//bazel:cc.bzl", "cc_test")

def header_test(name, hdrs, prefix, deps, **kwargs):
    srcs = []
    for hdr in hdrs:
        case = hdr.replace("/", "_").replace(".", "_").replace("-", "_")
        src = "%s_%s.cc" % (name, case)
        native.genrule(
            name = "%s_%s_src" % (name, case),
            outs = [src],
            cmd = "printf '%s\\n' '#include \"%s/%s\"' '#include \"gtest/gtest.h\"' 'TEST(SelfContainedHeaders, %s) {}' > $@" % ("%s", prefix, hdr, case),
            testonly = True,
        )
        srcs.append(src)
    cc_test(
        name = name,
        size = "small",
        srcs = srcs,
        deps = deps + ["//third_party:gtest_main"],
        **kwargs
    )
