#!/usr/bin/env bash
# Fails when the generated API code or CRDs are out of date with daemon/apis
# (i.e. when `go generate ./daemon/apis/...` would change a committed file).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
paths=(daemon/apis daemon/client manifests/base/crds manifests/charts/bgplb/crds)
bash hack/update-codegen.sh >/dev/null
if ! git diff --exit-code -- "${paths[@]}" || [ -n "$(git status --porcelain --untracked-files=all -- "${paths[@]}")" ]; then
	echo "generated code is out of date: run hack/update-codegen.sh (or go generate ./daemon/apis/...) and commit" >&2
	git status --short -- "${paths[@]}" >&2
	exit 1
fi
echo "generated code is up to date"
