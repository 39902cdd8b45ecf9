#!/usr/bin/env bash
# Builds the Python reference service of the conformance suite: a venv with the pinned
# requirements under .tools/conformance/python/venv, and the protobuf/gRPC code generated
# from proto/ by the pinned grpcio-tools into .tools/conformance/python/gen. Idempotent:
# a stamp of the requirements and the .proto files skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/../../.."

HERE=conformance/reference/python
OUT=.tools/conformance/python
VENV="${OUT}/venv"
GEN="${OUT}/gen"
PROTOS=(
  sessionbridge/v1/options.proto
  sessionbridge/conformance/v1/lab.proto
  sessionbridge/conformance/v1/harness.proto
)

stamp_inputs() {
  python3 --version
  cat "${HERE}/requirements.txt" "${HERE}/build.sh"
  for proto in "${PROTOS[@]}"; do cat "proto/${proto}"; done
}
STAMP="$(stamp_inputs | sha256sum | cut -d' ' -f1)"
if [[ -f "${OUT}/stamp" && "$(cat "${OUT}/stamp")" == "${STAMP}" && -x "${VENV}/bin/python" ]]; then
  exit 0
fi

rm -rf "${VENV}" "${GEN}" "${OUT}/stamp"
mkdir -p "${OUT}"
python3 -m venv "${VENV}"
"${VENV}/bin/pip" install --quiet --disable-pip-version-check --no-input -r "${HERE}/requirements.txt"

mkdir -p "${GEN}"
# grpc_tools ships the well-known types (google/protobuf/*.proto) as a package resource.
WKT="$("${VENV}/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
"${VENV}/bin/python" -m grpc_tools.protoc -I proto -I "${WKT}" \
  --python_out="${GEN}" --grpc_python_out="${GEN}" "${PROTOS[@]}"
echo "${STAMP}" > "${OUT}/stamp"
