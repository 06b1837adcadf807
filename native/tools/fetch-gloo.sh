#!/bin/bash
# Fetches the headers of the Gloo commit a PyTorch pins as third_party/gloo into DIR, for building
# wanlab against a PyTorch wheel or libtorch archive (which compile Gloo in and ship no headers):
#
#   native/tools/fetch-gloo.sh DIR [--torch-commit SHA] [--commit GLOO_SHA] [--from GLOO_GIT_DIR] [--cuda 0|1]
#   cmake ... -DWANLAB_GLOO_DIR=DIR      (or WANLAB_GLOO_DIR=DIR in the environment)
#
# --torch-commit: the PyTorch commit (default: python3's torch.version.git_version).
# --commit:       the Gloo commit that PyTorch commit pins (default: asked of GitHub's API,
#                 repos/pytorch/pytorch/contents/third_party/gloo?ref=<torch commit>).
# --from:         a Gloo git repository to take that commit from (default: GitHub's archive of
#                 pytorch/gloo). On a machine without network, fetch on one that has it and copy DIR.
# --cuda:         whether that PyTorch is a CUDA build (default: python3's torch.version.cuda).
# DIR gets gloo/**/*.h, the generated gloo/config.h (PyTorch's build options: TCP transport only)
# and wanlab-gloo.txt, the stamp native/cmake/gloo.cmake matches against the libtorch it builds with.
set -euo pipefail
die() { echo "fetch-gloo.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: fetch-gloo.sh DIR [--torch-commit SHA] [--commit GLOO_SHA] [--from GLOO_GIT_DIR] [--cuda 0|1]"
DIR=$1; shift
TORCH_COMMIT= GLOO_COMMIT= FROM= CUDA=
while [ $# -gt 0 ]; do
  case $1 in
    --torch-commit) TORCH_COMMIT=${2:?}; shift 2 ;;
    --commit) GLOO_COMMIT=${2:?}; shift 2 ;;
    --from) FROM=${2:?}; shift 2 ;;
    --cuda) CUDA=${2:?}; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
if [ -z "$TORCH_COMMIT" ]; then
  TORCH_COMMIT=$(python3 -c 'import torch; print(torch.version.git_version)' 2>/dev/null) \
    || die "no --torch-commit given and python3 cannot import torch"
fi
[[ $TORCH_COMMIT =~ ^[0-9a-f]{7,40}$ ]] || die "PyTorch commit '$TORCH_COMMIT' is not a git commit (a Debian torch says 'Unknown': it uses libgloo-dev)"
if [ -z "$CUDA" ]; then
  CUDA=$(python3 -c 'import torch; print(1 if torch.version.cuda else 0)' 2>/dev/null || echo 0)
fi
if [ -z "$GLOO_COMMIT" ]; then
  api="https://api.github.com/repos/pytorch/pytorch/contents/third_party/gloo?ref=$TORCH_COMMIT"
  GLOO_COMMIT=$(curl -fsSL "$api" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sha"])') \
    || die "cannot ask GitHub which Gloo commit PyTorch $TORCH_COMMIT pins ($api); give it with --commit"
fi
[[ $GLOO_COMMIT =~ ^[0-9a-f]{7,40}$ ]] || die "Gloo commit '$GLOO_COMMIT' is not a git commit"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -n "$FROM" ]; then
  git --git-dir="$FROM" archive "$GLOO_COMMIT" 2>/dev/null | tar x -C "$tmp" \
    || git -C "$FROM" archive "$GLOO_COMMIT" | tar x -C "$tmp" \
    || die "Gloo commit $GLOO_COMMIT is not in $FROM"
  GLOO_COMMIT=$(git --git-dir="$FROM" rev-parse "$GLOO_COMMIT^{commit}" 2>/dev/null || git -C "$FROM" rev-parse "$GLOO_COMMIT^{commit}")
else
  curl -fsSL "https://codeload.github.com/pytorch/gloo/tar.gz/$GLOO_COMMIT" | tar xz -C "$tmp" --strip-components 1 \
    || die "cannot download Gloo $GLOO_COMMIT from GitHub; give a local repository with --from"
fi
[ -f "$tmp/gloo/config.h.in" ] || die "Gloo $GLOO_COMMIT has no gloo/config.h.in: not a Gloo tree"

mkdir -p "$DIR"
rm -rf "$DIR/gloo"
(cd "$tmp" && find gloo -name '*.h' -print0 | xargs -0 cp --parents -t "$DIR")
# config.h as PyTorch's build configures it: the TCP transport, CUDA as the wheel, nothing else.
version() { sed -n "s/^set(GLOO_VERSION_$1 \\([0-9]*\\))/\\1/p" "$tmp/CMakeLists.txt"; }
on() { case $1 in GLOO_USE_CUDA|GLOO_USE_TORCH_DTYPES) echo "$CUDA" ;; GLOO_HAVE_TRANSPORT_TCP) echo 1 ;; *) echo 0 ;; esac; }
while IFS= read -r line; do
  if [[ $line =~ ^#cmakedefine01\ ([A-Z_0-9]+) ]]; then
    echo "#define ${BASH_REMATCH[1]} $(on "${BASH_REMATCH[1]}")"
  else
    line=${line//@GLOO_VERSION_MAJOR@/$(version MAJOR)}
    line=${line//@GLOO_VERSION_MINOR@/$(version MINOR)}
    echo "${line//@GLOO_VERSION_PATCH@/$(version PATCH)}"
  fi
done < "$tmp/gloo/config.h.in" > "$DIR/gloo/config.h"
printf 'gloo %s\npytorch %s\n' "$GLOO_COMMIT" "$TORCH_COMMIT" > "$DIR/wanlab-gloo.txt"
echo "Gloo $GLOO_COMMIT headers for PyTorch $TORCH_COMMIT in $DIR: build with WANLAB_GLOO_DIR=$DIR"
