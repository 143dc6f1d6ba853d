#!/usr/bin/env bash
# The version is written twice: VERSION (read by CMake's project()) and
# bazel/version.bzl (TWINLOOP_VERSION, for Bazel, which cannot read files
# while loading). They must agree, and be MAJOR.MINOR.PATCH; CHANGELOG.md
# must have a section for it.
set -euo pipefail
version_file=$1 bzl=$2 changelog=$3
file_version=$(head -n1 "$version_file")
bzl_version=$(sed -n 's/^TWINLOOP_VERSION = "\(.*\)"$/\1/p' "$bzl")
status=0
if [[ ! $file_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "VERSION holds '$file_version', expected MAJOR.MINOR.PATCH" >&2
  status=1
fi
if [[ $file_version != "$bzl_version" ]]; then
  echo "VERSION says '$file_version' but bazel/version.bzl says TWINLOOP_VERSION = '$bzl_version'" >&2
  status=1
fi
if ! grep -q "^## $file_version\b" "$changelog"; then
  echo "CHANGELOG.md has no '## $file_version' section" >&2
  status=1
fi
((status == 0)) && echo "version $file_version: VERSION, bazel/version.bzl and CHANGELOG.md agree"
exit $status
