#!/usr/bin/env python3
"""compile_commands.json for editors (clangd, clang-tidy, IDEs) from the Bazel build.

    tools/compile_commands.py                      # //... -> ./compile_commands.json
    tools/compile_commands.py -o out.json //api/... --config=gcc

Runs `bazel aquery` for the C++ compile actions of the targets (default //...)
with the given Bazel flags, and writes one entry per source file: the
directory is Bazel's execution root (the compiler's working directory, where
the command's relative include paths resolve), the file the source's path in
the workspace when it is one of the workspace's files. Build the targets once
first (`bazel build //...`): the commands name headers under bazel-out/ (the
include_prefix links, "twinloop/api/...") that exist only after a build.
CMake writes its own (docs/building.md, "Compile commands").

Exits non-zero with a message if bazel fails, prints nothing parseable, or no
compile action is found: an editor never gets an empty or partial file
without being told.
"""

import argparse
import json
import os
import subprocess
import sys

SOURCE_SUFFIXES = (".cc", ".cpp", ".cxx", ".c", ".C")


def fail(message):
    print(f"compile_commands: error: {message}", file=sys.stderr)
    sys.exit(1)


def bazel(args, cwd):
    try:
        run = subprocess.run(["bazel", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        fail("bazel is not on PATH")
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        fail(f"`bazel {' '.join(args)}` exited with {run.returncode}")
    return run.stdout


def source_of(arguments):
    """The file a compile command compiles: the argument after -c."""
    for i, a in enumerate(arguments[:-1]):
        if a == "-c" and arguments[i + 1].endswith(SOURCE_SUFFIXES):
            return arguments[i + 1]
    return None


def entries(aquery, execroot, workspace):
    """compile_commands.json entries from `bazel aquery --output=jsonproto` output."""
    try:
        doc = json.loads(aquery) if aquery.strip() else {}
    except json.JSONDecodeError as e:
        fail(f"bazel aquery printed something that is not JSON ({e})")
    out = {}
    for action in doc.get("actions", []):
        if action.get("mnemonic") != "CppCompile":
            continue
        arguments = action.get("arguments", [])
        src = source_of(arguments)
        if src is None:
            continue
        # A workspace file by its real path (editors open that one); external
        # and generated files stay under the execution root.
        in_workspace = os.path.join(workspace, src)
        file = in_workspace if not src.startswith(("external/", "bazel-out/")) and os.path.exists(in_workspace) \
            else os.path.join(execroot, src)
        # One entry per file: the first configuration's (aquery lists a file
        # once per configuration it is built in).
        out.setdefault(file, {"directory": execroot, "file": file, "arguments": arguments})
    return [out[k] for k in sorted(out)]


def check(path, source):
    """Checks that `path` is a compile_commands.json naming `source`; exits 1 if not."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: not a readable JSON file ({e})")
    if not isinstance(doc, list) or not doc:
        fail(f"{path}: expected a non-empty JSON array of compile commands")
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or not {"directory", "file"} <= entry.keys() or \
                not ({"arguments", "command"} & entry.keys()):
            fail(f"{path}: entry {i} lacks directory, file, or arguments/command: {str(entry)[:200]}")
    wanted = os.path.normpath(source)
    names = [os.path.normpath(os.path.join(e["directory"], e["file"])) for e in doc]
    if not any(n == wanted or n.endswith(os.sep + wanted) for n in names):
        fail(f"{path}: no entry compiles {source} ({len(doc)} entries)")
    print(f"compile_commands: {path}: {len(doc)} entries, {source} among them", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(
        description="Write compile_commands.json from `bazel aquery` (docs/building.md).",
        epilog="Other arguments: Bazel flags (--config=...) and target patterns (default //...).",
        allow_abbrev=False)
    parser.add_argument("-o", "--output", default=None,
                        help="where to write (default: compile_commands.json at the workspace root)")
    parser.add_argument("--check", nargs=2, metavar=("FILE", "SOURCE"),
                        help="only check that FILE is a valid compile_commands.json with an entry for SOURCE")
    args, rest = parser.parse_known_args()
    if args.check:
        if rest:
            fail(f"--check takes no other arguments (got {' '.join(rest)})")
        check(*args.check)
        return
    flags = [a for a in rest if a.startswith("-")]
    targets = [a for a in rest if not a.startswith("-")] or ["//..."]

    workspace = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.environ.get("BUILD_WORKSPACE_DIRECTORY"):
        workspace = os.environ["BUILD_WORKSPACE_DIRECTORY"]
    output = args.output or os.path.join(workspace, "compile_commands.json")

    execroot = bazel(["info", *flags, "execution_root"], workspace).strip()
    query = "mnemonic('CppCompile', deps(%s))" % " + ".join(targets)
    aquery = bazel(["aquery", *flags, "--output=jsonproto", "--include_artifacts=false", query], workspace)
    result = entries(aquery, execroot, workspace)
    if not result:
        fail(f"no C++ compile action found for {' '.join(targets)}")
    with open(output, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"compile_commands: {len(result)} files -> {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
