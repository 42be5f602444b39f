#!/bin/sh
# Stands in for nymgate's sources with empty ones, so that the image's first build compiles the
# dependencies from Cargo.toml and Cargo.lock alone: that layer is then reused by every build
# whose manifests did not change (deploy/Dockerfile). Cargo refuses a manifest whose declared
# targets are missing, so each [[bench]] and [[example]] gets an empty one too.
# Run in the folder that holds Cargo.toml; tests/deploy.rs checks the result with `cargo fetch`.
set -eu
mkdir -p src benches examples
echo 'fn main() {}' > src/main.rs
: > src/lib.rs
for kind in bench example; do
    if [ "$kind" = bench ]; then folder=benches; else folder=examples; fi
    awk -v section="[[$kind]]" '
        $0 == section { wanted = 1; next }
        /^\[/ { wanted = 0 }
        wanted && $1 == "name" { gsub(/"/, "", $3); print $3; wanted = 0 }
    ' Cargo.toml | while read -r name; do
        echo 'fn main() {}' > "$folder/$name.rs"
    done
done
