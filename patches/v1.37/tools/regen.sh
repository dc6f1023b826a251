#!/bin/sh
# Rebuild or refresh the kubelet-lxc patch series for Kubernetes v1.37.
#
#   tools/regen.sh apply  PRISTINE WORKDIR   clone PRISTINE (a git repo of
#                                            v1.37.1, tag v1.37.1) into
#                                            WORKDIR and `git am` the series
#                                            onto branch "lxc"
#   tools/regen.sh export WORKDIR            rewrite the NNNN-*.patch files
#                                            and `series` from the commits
#                                            v1.37.1..lxc in WORKDIR
#
# Edit the series in between with ordinary git (commit --fixup + rebase
# --autosquash, etc.). Commits keep the fixed author and date below, and
# export uses options that make the output independent of the clone
# (zeroed commit ids, full blob ids, no signature), so exporting an
# unchanged series reproduces the files byte for byte.
set -eu

PATCHDIR=$(cd "$(dirname "$0")/.." && pwd)
BASE=v1.37.1
export GIT_AUTHOR_NAME=kubelet-lxc GIT_AUTHOR_EMAIL=kubelet-lxc@users.noreply.github.com
export GIT_COMMITTER_NAME=kubelet-lxc GIT_COMMITTER_EMAIL=kubelet-lxc@users.noreply.github.com
export GIT_AUTHOR_DATE=2026-11-24T00:00:00Z GIT_COMMITTER_DATE=2026-11-24T00:00:00Z

case "${1:-}" in
apply)
	pristine=$2 work=$3
	git clone -q "$pristine" "$work"
	cd "$work"
	git checkout -q -b lxc "$BASE"
	grep -v '^[[:space:]]*#' "$PATCHDIR/series" | grep -v '^[[:space:]]*$' | while read -r p; do
		git am -q --committer-date-is-author-date "$PATCHDIR/$p"
	done
	git log --oneline "$BASE..lxc"
	;;
export)
	work=$2
	rm -f "$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch
	git -C "$work" -c core.abbrev=12 -c diff.algorithm=myers -c diff.renames=false \
		format-patch -q --no-signature --zero-commit -N --full-index --stat=80 \
		-o "$PATCHDIR" "$BASE..lxc"
	{
		echo "# kubelet-lxc patch series for Kubernetes $BASE (apply in order with git am)"
		echo "# seams (test seams only, no behaviour change): 0001-0004"
		(cd "$PATCHDIR" && ls [0-9][0-9][0-9][0-9]-*.patch)
	} >"$PATCHDIR/series"
	;;
*)
	sed -n '2,17p' "$0"
	exit 2
	;;
esac
