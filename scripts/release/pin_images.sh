#!/bin/sh
# Pin the Cloud Build step images by digest: every `_<NAME>_IMAGE: repo:tag@sha256:<digest>`
# substitution of the cloudbuild*.yaml files gets the digest the tag points to now.
#
#   sh scripts/release/pin_images.sh           rewrite the digests in place (review the diff,
#                                              run `make test`, commit)
#   sh scripts/release/pin_images.sh --check   change nothing; exit 1 if a tag has moved
#
# A tag resolves with `crane digest` (go-containerregistry) when it is installed, else with
# `docker buildx imagetools inspect`; both read the registry's manifest (the multi-platform
# index when there is one), pull nothing and need no login for public images. Run it from a
# workstation or Cloud Shell (crane: `go install github.com/google/go-containerregistry/cmd/crane@latest`
# or the gcr.io/go-containerregistry/crane image). tests/deploy/test_release.py runs it
# against a stand-in crane and checks that every step image is pinned.
set -eu

check=false
[ "${1:-}" = "--check" ] && check=true

resolve() {
  if command -v crane >/dev/null 2>&1; then
    crane digest "$1"
  elif command -v docker >/dev/null 2>&1; then
    docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"'
  else
    echo "pin_images: neither crane nor docker is installed" >&2
    exit 2
  fi
}

moved=0
for file in cloudbuild*.yaml; do
  # `  _X_IMAGE: repo:tag@sha256:...` (or a bare `repo:tag`, pinned for the first time)
  sed -n 's/^  \(_[A-Z_]*_IMAGE\): *\([^ @#]*\)\(@sha256:[0-9a-f]*\)\{0,1\}.*$/\1 \2 \3/p' \
    "$file" | while read -r key ref pinned; do
    digest=$(resolve "$ref")
    case "$digest" in
      sha256:????????????????????????????????????????????????????????????????) ;;
      *) echo "pin_images: $ref resolved to '$digest', not a sha256 digest" >&2; exit 2 ;;
    esac
    if [ "$pinned" = "@$digest" ]; then
      echo "$file $key: $ref@$digest (unchanged)"
    elif [ "$check" = true ]; then
      echo "$file $key: $ref is now $digest, pinned ${pinned#@}" >&2
      exit 1
    else
      sed -i "s|^  $key: *[^ #]*|  $key: $ref@$digest|" "$file"
      echo "$file $key: $ref@$digest (was ${pinned#@})"
    fi
  done || moved=1
done
exit "$moved"
