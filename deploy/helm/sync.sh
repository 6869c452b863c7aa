#!/usr/bin/env bash
# Copies the alert rules (alerts/*.yml) and the Grafana dashboards (grafana/dashboards/*.json)
# into the chart: Helm templates read files inside the chart only. Run it after changing
# either; tests/deploy.rs fails while the copies differ from the originals.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
chart="$root/deploy/helm/gatewayz"

sync() {
    local from="$1" pattern="$2" to="$3"
    mkdir -p "$to"
    # Copies whose original is gone go too.
    find "$to" -maxdepth 1 -type f -name "$pattern" -delete
    find "$from" -maxdepth 1 -type f -name "$pattern" -exec cp {} "$to/" \;
}

sync "$root/alerts" '*.yml' "$chart/files/alerts"
sync "$root/grafana/dashboards" '*.json' "$chart/files/dashboards"
echo "synced $(ls "$chart/files/alerts" | wc -l) rule file(s) and $(ls "$chart/files/dashboards" | wc -l) dashboard(s) into $chart/files"
