"""twinloop's external dependencies, for a WORKSPACE (twinloop's own and its users').

A project that depends on twinloop (docs/building.md, "Using twinloop from Bazel"):

    local_repository(name = "twinloop", path = "...")   # or http_archive
    load("@twinloop//bazel:deps.bzl", "twinloop_dependencies")
    twinloop_dependencies()

twinloop_dependencies() declares
  - offline stand-ins for the three repositories Bazel 4.2.3 would otherwise
    download on first use (rules_cc, rules_java, remote_coverage_tools), each
    only if the WORKSPACE has not declared it already (a project with the real
    ones declares them first and keeps them);
  - @twinloop_third_party: the libraries behind twinloop's //third_party
    targets (absl, gtest, gtest_main, rapidcheck, benchmark, benchmark_main).
    By default they are the system's (Debian's libabsl-dev, libgtest-dev,
    libgmock-dev, librapidcheck-dev, libbenchmark-dev), linked with -l flags.
    A project that builds its own Abseil or GoogleTest from source points
    twinloop at them instead, so that a program never links two copies:

        twinloop_dependencies(
            absl_repo = "@com_google_absl",             # Abseil LTS 20220623 or newer
            googletest_repo = "@com_google_googletest", # GoogleTest 1.12 or newer
            benchmark_repo = "@com_github_google_benchmark",
            rapidcheck = "@rapidcheck//:rapidcheck",    # a cc_library label
        )

    Each argument is independent; the ones left out stay the system's.
"""

load(":version.bzl", _TWINLOOP_VERSION = "TWINLOOP_VERSION")

TWINLOOP_VERSION = _TWINLOOP_VERSION

def _files_repository_impl(ctx):
    for path, content in ctx.attr.files.items():
        ctx.file(path, content, executable = False)

# A repository made of the given files ({path: content}); nothing is downloaded.
_files_repository = repository_rule(
    implementation = _files_repository_impl,
    attrs = {"files": attr.string_dict(mandatory = True)},
)

# @rules_cc: @bazel_tools//tools/cpp loads @rules_cc//cc:defs.bzl. Re-exporting
# Bazel's native rules satisfies it, and lets BUILD files load the rules as
# rules_cc users expect.
_RULES_CC = {
    "WORKSPACE": 'workspace(name = "rules_cc")\n',
    "BUILD": "# Offline stand-in for rules_cc (twinloop's bazel/deps.bzl); the rules are in //cc:defs.bzl.\n",
    "cc/BUILD": "",
    "cc/defs.bzl": "\n".join([
        '"""Offline stand-in for @rules_cc//cc:defs.bzl: Bazel\'s native C++ rules (twinloop\'s bazel/deps.bzl)."""',
        "",
        "cc_binary = native.cc_binary",
        "cc_import = native.cc_import",
        "cc_library = native.cc_library",
        "cc_test = native.cc_test",
        "cc_toolchain = native.cc_toolchain",
        "cc_toolchain_suite = native.cc_toolchain_suite",
        "",
    ]),
}

# @rules_java: @bazel_tools//tools/jdk loads @rules_java//java:defs.bzl even in
# C++-only builds.
_RULES_JAVA = {
    "WORKSPACE": 'workspace(name = "rules_java")\n',
    "BUILD": "# Offline stand-in for rules_java (twinloop's bazel/deps.bzl); the rules are in //java:defs.bzl.\n",
    "java/BUILD": "",
    "java/defs.bzl": "\n".join([
        '"""Offline stand-in for @rules_java//java:defs.bzl: Bazel\'s native Java rules (twinloop\'s bazel/deps.bzl)."""',
        "",
        "java_binary = native.java_binary",
        "java_import = native.java_import",
        "java_library = native.java_library",
        "java_plugin = native.java_plugin",
        "java_runtime = native.java_runtime",
        "java_test = native.java_test",
        "java_toolchain = native.java_toolchain",
        "",
    ]),
}

# @remote_coverage_tools: every test rule depends on these two labels. They are
# empty, so `bazel coverage` does not work with the stand-in (docs/building.md).
_REMOTE_COVERAGE_TOOLS = {
    "WORKSPACE": 'workspace(name = "remote_coverage_tools")\n',
    "BUILD": "\n".join([
        "# Offline stand-in for remote_coverage_tools (twinloop's bazel/deps.bzl).",
        'filegroup(name = "coverage_report_generator", visibility = ["//visibility:public"])',
        'filegroup(name = "lcov_merger", visibility = ["//visibility:public"])',
        "",
    ]),
}

# The system libraries. Headers come from /usr/include through the
# auto-configured toolchain, so these targets only carry link flags.
#
# Abseil LTS 20220623 (libabsl-dev), split into many shared libraries. First
# line: the libraries twinloop references directly (Time/Duration, str_format,
# strings, flat_hash_map/set; AnyInvocable and InlinedVector are header-only).
# The rest is their transitive closure, listed so the set is complete even for
# static linking.
_SYSTEM_ABSL_LINKOPTS = [
    "-labsl_statusor",
    "-labsl_status",
    "-labsl_synchronization",
    "-labsl_str_format_internal",
    "-labsl_cord",
    "-labsl_cordz_info",
    "-labsl_cordz_handle",
    "-labsl_cordz_functions",
    "-labsl_cord_internal",
    "-labsl_raw_hash_set",
    "-labsl_hash",
    "-labsl_city",
    "-labsl_low_level_hash",
    "-labsl_time",
    "-labsl_time_zone",
    "-labsl_strings",
    "-labsl_strings_internal",
    "-labsl_int128",
    "-labsl_graphcycles_internal",
    "-labsl_stacktrace",
    "-labsl_symbolize",
    "-labsl_debugging_internal",
    "-labsl_demangle_internal",
    "-labsl_malloc_internal",
    "-labsl_exponential_biased",
    "-labsl_strerror",
    "-labsl_base",
    "-labsl_spinlock_wait",
    "-labsl_throw_delegate",
    "-labsl_raw_logging_internal",
    "-pthread",
]

# The Abseil targets (of Abseil's own Bazel build) behind the headers twinloop
# includes: absl/strings/{str_cat,str_split,str_join,str_replace,numbers,match,
# ascii}.h, absl/strings/str_format.h, absl/time/time.h,
# absl/functional/any_invocable.h, absl/container/{flat_hash_map,
# flat_hash_set,inlined_vector}.h.
_ABSL_TARGETS = [
    "//absl/container:flat_hash_map",
    "//absl/container:flat_hash_set",
    "//absl/container:inlined_vector",
    "//absl/functional:any_invocable",
    "//absl/strings",
    "//absl/strings:str_format",
    "//absl/time",
]

def _cc_library(name, linkopts = [], deps = [], comment = ""):
    lines = []
    if comment:
        lines.append("# " + comment)
    lines.append("cc_library(")
    lines.append("    name = %r," % name)
    if linkopts:
        lines.append("    linkopts = %r," % linkopts)
    if deps:
        lines.append("    deps = %r," % deps)
    lines.append(")")
    return "\n".join(lines) + "\n"

def _alias(name, actual):
    return "alias(\n    name = %r,\n    actual = %r,\n)\n" % (name, actual)

def _third_party_build(absl_repo, googletest_repo, benchmark_repo, rapidcheck):
    """The BUILD file of @twinloop_third_party."""
    out = [
        "# Generated by twinloop_dependencies() (twinloop's bazel/deps.bzl): the",
        "# libraries behind twinloop's //third_party targets.",
        'load("@rules_cc//cc:defs.bzl", "cc_library")',
        "",
        'package(default_visibility = ["//visibility:public"])',
        "",
    ]
    if absl_repo:
        out.append(_cc_library("absl", deps = [absl_repo + t for t in _ABSL_TARGETS], comment = "Abseil from " + absl_repo + "."))
    else:
        out.append(_cc_library("absl", linkopts = _SYSTEM_ABSL_LINKOPTS, comment = "Abseil LTS 20220623 (libabsl-dev)."))
    if googletest_repo:
        out.append(_alias("gtest", googletest_repo + "//:gtest"))
        out.append(_alias("gtest_main", googletest_repo + "//:gtest_main"))
    else:
        out.append(_cc_library("gtest", linkopts = ["-lgmock", "-lgtest", "-pthread"], comment = "GoogleTest and GoogleMock 1.12.1 (libgtest-dev, libgmock-dev)."))
        out.append(_cc_library("gtest_main", linkopts = ["-lgtest_main"], deps = [":gtest"]))
    if rapidcheck:
        out.append(_alias("rapidcheck", rapidcheck))
    else:
        out.append(_cc_library("rapidcheck", linkopts = ["-lrapidcheck"], comment = "RapidCheck (librapidcheck-dev, static)."))
    if benchmark_repo:
        out.append(_alias("benchmark", benchmark_repo + "//:benchmark"))
        out.append(_alias("benchmark_main", benchmark_repo + "//:benchmark_main"))
    else:
        out.append(_cc_library("benchmark", linkopts = ["-lbenchmark", "-pthread"], comment = "Google Benchmark 1.7.1 (libbenchmark-dev)."))
        out.append(_cc_library("benchmark_main", linkopts = ["-lbenchmark_main"], deps = [":benchmark"]))
    return "\n".join(out)

def _check_repo(arg, value):
    if value and (not value.startswith("@") or "/" in value or ":" in value):
        fail("twinloop_dependencies(%s = %r): expected a repository name such as \"@com_google_absl\"" % (arg, value))

def _check_label(arg, value):
    if value and not (value.startswith("@") or value.startswith("//")):
        fail("twinloop_dependencies(%s = %r): expected a label such as \"@rapidcheck//:rapidcheck\"" % (arg, value))

def twinloop_dependencies(absl_repo = None, googletest_repo = None, benchmark_repo = None, rapidcheck = None):
    """Declares the repositories twinloop needs (see the file's docstring).

    Args:
      absl_repo: a repository with Abseil's own Bazel build (e.g. "@com_google_absl")
        to use instead of the system's libabsl.
      googletest_repo: a repository with GoogleTest's own Bazel build (its //:gtest and
        //:gtest_main) instead of the system's libgtest / libgmock.
      benchmark_repo: a repository with Google Benchmark's Bazel build (//:benchmark,
        //:benchmark_main) instead of the system's libbenchmark.
      rapidcheck: the label of a RapidCheck cc_library instead of the system's
        librapidcheck.
    """
    _check_repo("absl_repo", absl_repo)
    _check_repo("googletest_repo", googletest_repo)
    _check_repo("benchmark_repo", benchmark_repo)
    _check_label("rapidcheck", rapidcheck)
    for name, files in [
        ("rules_cc", _RULES_CC),
        ("rules_java", _RULES_JAVA),
        ("remote_coverage_tools", _REMOTE_COVERAGE_TOOLS),
    ]:
        if not native.existing_rule(name):
            _files_repository(name = name, files = files)
    if not native.existing_rule("twinloop_third_party"):
        _files_repository(
            name = "twinloop_third_party",
            files = {
                "WORKSPACE": 'workspace(name = "twinloop_third_party")\n',
                "BUILD": _third_party_build(absl_repo, googletest_repo, benchmark_repo, rapidcheck),
            },
        )
