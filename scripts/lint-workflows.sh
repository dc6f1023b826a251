#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint (which understands workflow syntax,
# expressions, action inputs, runner labels, and, when shellcheck is on PATH, the run: scripts).
# actionlint is built from source through the Go module proxy into the tools folder, pinned.
#
#   scripts/lint-workflows.sh [workflow files...]   (default: .github/workflows/*.yml)
#
# Env: KUBELET_LXC_TOOLS (default <repo>/.work/tools), REQUIRE_SHELLCHECK=1 to fail without shellcheck.
# Exit: 0 clean, 1 findings, 2 actionlint could not be built.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${KUBELET_LXC_TOOLS:-$root/.work/tools}"
actionlint="$tools/bin/actionlint"

if [[ ! -x "$actionlint" ]] || [[ "$("$actionlint" -version 2>/dev/null | head -n1)" != "$ACTIONLINT_VERSION" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "lint-workflows: actionlint $ACTIONLINT_VERSION is not in $tools/bin and Go is not on PATH to build it." >&2
    echo "  Install Go, then: GOBIN=$tools/bin go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
    exit 2
  fi
  echo "lint-workflows: building actionlint $ACTIONLINT_VERSION into $tools/bin" >&2
  mkdir -p "$tools/bin"
  if ! GOBIN="$tools/bin" GOFLAGS='' go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2; then
    echo "lint-workflows: could not build actionlint $ACTIONLINT_VERSION (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))." >&2
    echo "  By hand: GOBIN=$tools/bin go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
    exit 2
  fi
fi

shellcheck_flag=()
if command -v shellcheck >/dev/null 2>&1; then
  echo "lint-workflows: actionlint $ACTIONLINT_VERSION with $(shellcheck --version | sed -n 's/^version: /shellcheck /p') on the run: scripts" >&2
  shellcheck_flag=(-shellcheck "$(command -v shellcheck)")
else
  if [[ "${REQUIRE_SHELLCHECK:-0}" == "1" ]]; then
    echo "lint-workflows: shellcheck is not on PATH (REQUIRE_SHELLCHECK=1): apt-get install -y shellcheck" >&2
    exit 2
  fi
  echo "lint-workflows: actionlint $ACTIONLINT_VERSION without shellcheck (apt-get install -y shellcheck to check the run: scripts too)" >&2
  shellcheck_flag=(-shellcheck=)
fi

cd "$root"
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  shopt -s nullglob
  files=(.github/workflows/*.yml .github/workflows/*.yaml)
fi
if [[ ${#files[@]} -eq 0 ]]; then
  echo "lint-workflows: no workflow files" >&2
  exit 1
fi
"$actionlint" "${shellcheck_flag[@]}" -no-color "${files[@]}"
echo "lint-workflows: ${#files[@]} workflow file(s) clean: ${files[*]}"
