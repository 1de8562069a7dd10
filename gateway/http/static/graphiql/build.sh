#!/usr/bin/env bash
# Rebuilds GraphiQL's assets in this folder from the npm registry, at the exact versions
# below: each package's own ready-made browser bundle (UMD build and style sheet), copied
# byte for byte, with its licence. Needs npm and network access to the registry; run it
# only to change a version (then update README.md here and run tests/http/test_graphiql.py).
#
#     bash gateway/http/static/graphiql/build.sh
set -euo pipefail

REACT=18.2.0
GRAPHIQL=3.8.3
EXPLORER=1.0.2           # @graphiql/plugin-explorer
GRAPHIQL_EXPLORER=0.9.0  # graphiql-explorer, bundled inside the plugin's UMD build

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unpack() {  # unpack NAME@VERSION: the package's tarball into $work/NAME
    local spec=$1 name=${1%@*}
    local tarball
    tarball=$(cd "$work" && npm pack --silent "$spec" | tail -n 1)
    mkdir -p "$work/$name"
    tar -xzf "$work/$tarball" -C "$work/$name" --strip-components=1
}
unpack "react@$REACT"
unpack "react-dom@$REACT"
unpack "graphiql@$GRAPHIQL"
unpack "@graphiql/plugin-explorer@$EXPLORER"
unpack "graphiql-explorer@$GRAPHIQL_EXPLORER"

place() {  # place DIR FILE...: a fresh versioned folder holding the files given
    local dir=$here/$1
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$@" "$dir/"
}
place "react-$REACT" "$work/react/umd/react.production.min.js" "$work/react/LICENSE"
place "react-dom-$REACT" "$work/react-dom/umd/react-dom.production.min.js" \
    "$work/react-dom/LICENSE"
place "graphiql-$GRAPHIQL" "$work/graphiql/graphiql.min.js" "$work/graphiql/graphiql.min.css" \
    "$work/graphiql/LICENSE"
# The plugin's package carries no licence file: its package.json says MIT, and it comes from
# the same repository as graphiql (graphql/graphiql), whose LICENSE that is. Its UMD build
# bundles graphiql-explorer (MIT), whose licence goes beside it.
place "plugin-explorer-$EXPLORER" "$work/@graphiql/plugin-explorer/dist/index.umd.js" \
    "$work/@graphiql/plugin-explorer/dist/style.css"
cp "$work/graphiql/LICENSE" "$here/plugin-explorer-$EXPLORER/LICENSE"
cp "$work/graphiql-explorer/LICENSE" "$here/plugin-explorer-$EXPLORER/LICENSE.graphiql-explorer"
node -e 'const p = require(process.argv[1]); if (p.license !== "MIT") process.exit(1)' \
    "$work/@graphiql/plugin-explorer/package.json"

# What graphiql.min.js bundles (its module paths name each package) and their licences, as
# the packages declared them just after graphiql's release (npm resolves as of then).
released=$(npm view "graphiql@$GRAPHIQL" "time[$GRAPHIQL]")
released=$(node -p 'new Date(Date.parse(process.argv[1]) + 3600e3).toISOString()' "$released")
(cd "$work" && mkdir deps && cd deps && npm install --loglevel=error --ignore-scripts --no-audit \
    --no-fund --before="$released" "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT")
grep -o '"\.\./\.\./\.\./node_modules/\(@[^/]*/\)\?[^/"]*' "$work/graphiql/graphiql.min.js" \
    | sed 's#"../../../node_modules/##' | sort -u \
    | (cd "$work/deps" && node -e '
        // Each package as installed at the top, or nested under another when versions differ.
        const fs = require("fs");
        const { execSync } = require("child_process");
        const names = fs.readFileSync(0, "utf8").split("\n").filter(Boolean);
        const rows = names.map((name) => {
          const found = execSync(`find node_modules -path "*node_modules/${name}/package.json"`)
            .toString().split("\n").filter(Boolean).sort((a, b) => a.length - b.length);
          if (found.length) {
            const meta = JSON.parse(fs.readFileSync(found[0], "utf8"));
            return `| ${name} | ${meta.version} | ${meta.license} |`;
          }
          // Not in graphiql'"'"'s dependency tree today (an optional peer, a build helper):
          // the licence its newest release declares.
          const license = execSync(`npm view ${name} license`).toString().trim();
          return `| ${name} | (not resolved) | ${license} |`;
        });
        console.log(["| package | version | licence |", "|---|---|---|", ...rows].join("\n"));
      ') > "$here/graphiql-$GRAPHIQL/BUNDLED.md"

cd "$here"
for file in */*.js */*.css; do
    printf '%s  sha384-%s\n' "$file" "$(openssl dgst -sha384 -binary "$file" | openssl base64 -A)"
done
