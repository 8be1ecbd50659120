# Tenantry build, run and test entry points. Every target installs what it needs on a fresh
# Debian 12 machine (npm packages, Debian chromium/postgresql) and is safe to run again.
#
#   make build   generated code + CSS + vendored JS, then bin/tenantry
#   make run     build, pick/start PostgreSQL, migrate, seed the demo, serve
#   make test    everything CI checks (.ci/run calls it)
#
# Each recipe runs as one bash script (.ONESHELL) with -eu -o pipefail.

SHELL         := bash
.SHELLFLAGS   := -eu -o pipefail -c
.ONESHELL:
.NOTPARALLEL:
.DEFAULT_GOAL := build

# Must equal playwright-core in package.json and the driver version that
# github.com/playwright-community/playwright-go v0.5200.1 expects.
PW_VERSION := 1.52.0
PW_DRIVER  := $(CURDIR)/.cache/playwright-driver-$(PW_VERSION)

# Read by the e2e tests (./e2e): the Playwright driver dir (system node + npm playwright-core,
# nothing downloaded) and Debian's chromium.
export PLAYWRIGHT_DRIVER_PATH := $(PW_DRIVER)
export CHROMIUM_PATH          ?= /usr/bin/chromium
# Silences Tailwind's "caniuse-lite is outdated" notice.
export BROWSERSLIST_IGNORE_OLD_DATA := 1

NPM_STAMP := node_modules/.package-lock.json
# Picks or starts PostgreSQL and prints `export ...` lines; see the comment at its top.
ENSURE_PG := .ci/ensure-postgres

DEMO_EMAIL      := admin@tenantry.local
DEMO_EXEC_EMAIL := exec@tenantry.local
DEMO_PASSWORD   := tenantry-demo

# sha256 of every generated or vendored file that is committed (for check-generated).
SNAPSHOT_GENERATED := find . \( -path ./node_modules -o -path './.*' \) -prune -o -type f \
	\( -name '*_templ.go' -o -path ./static/css/app.css -o -path './static/js/*.js' \) -print \
	| sed 's|^\./||' | LC_ALL=C sort | xargs -r sha256sum

.PHONY: deps generate css assets check-generated vet build chromium e2e-deps pg pg-stop run test bench clean

## deps: npm packages (npm ci, only when package*.json changed) and Go modules.
deps: $(NPM_STAMP)
	go mod download

$(NPM_STAMP): package.json package-lock.json
	@if ! command -v npm >/dev/null; then
		echo "node/npm missing: installing Debian's nodejs and npm"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
	fi
	echo "npm ci --no-audit --no-fund"
	npm ci --no-audit --no-fund
	touch $@

## generate: Go code from the templ files (views/**/*.templ -> *_templ.go).
generate:
	go tool templ generate -log-level warn

## css: static/css/app.css from web/styles.css and tailwind.config.js.
css: $(NPM_STAMP)
	./node_modules/.bin/tailwindcss -c tailwind.config.js -i web/styles.css -o static/css/app.css --minify

## assets: vendored htmx and ECharts from node_modules into static/js.
assets: $(NPM_STAMP)
	mkdir -p static/js
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/echarts/dist/echarts.min.js static/js/

## check-generated: regenerate everything and fail if a committed generated file was stale.
check-generated:
	@before="$$($(SNAPSHOT_GENERATED))"
	$(MAKE) --no-print-directory generate css assets
	after="$$($(SNAPSHOT_GENERATED))"
	if [ "$$before" != "$$after" ]; then
		echo >&2
		echo "ERROR: generated files were stale and have been regenerated: commit them:" >&2
		diff <(echo "$$before") <(echo "$$after") | sed -nE 's/^[<>] [0-9a-f]{64}  /  /p' | LC_ALL=C sort -u >&2
		exit 1
	fi
	echo "check-generated: templ output, static/css/app.css and static/js are up to date"

## vet: go vet on every package.
vet:
	go vet ./...

## build: bin/tenantry, with fresh generated code, CSS and vendored JS.
build: generate css assets
	go build -o bin/tenantry ./cmd/tenantry

## chromium: Debian's chromium for the e2e tests (apt-get only if it is missing).
chromium:
	@if [ -x "$(CHROMIUM_PATH)" ]; then
		echo "chromium: $$("$(CHROMIUM_PATH)" --version 2>/dev/null) at $(CHROMIUM_PATH)"
	else
		echo "chromium: $(CHROMIUM_PATH) is missing; installing Debian's chromium"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core
	fi

## e2e-deps: chromium plus the Playwright driver dir (system node + a copy of npm playwright-core).
e2e-deps: chromium $(NPM_STAMP)
	@if [ ! -f "$(PW_DRIVER)/.stamp" ] || [ "$(NPM_STAMP)" -nt "$(PW_DRIVER)/.stamp" ] ||
		! "$(PW_DRIVER)/node" "$(PW_DRIVER)/package/cli.js" --version 2>/dev/null | grep -qF "$(PW_VERSION)"; then
		echo "playwright: building the driver dir $(PW_DRIVER)"
		rm -rf "$(PW_DRIVER)"
		mkdir -p "$(PW_DRIVER)"
		ln -s "$$(command -v node)" "$(PW_DRIVER)/node"
		cp -r node_modules/playwright-core "$(PW_DRIVER)/package"
		touch "$(PW_DRIVER)/.stamp"
	fi
	"$(PW_DRIVER)/node" "$(PW_DRIVER)/package/cli.js" --version | grep -qF "$(PW_VERSION)" ||
		{ echo "playwright: $(PW_DRIVER) is not driver $(PW_VERSION)" >&2; exit 1; }
	echo "playwright: driver $(PW_VERSION) ready; PLAYWRIGHT_DRIVER_PATH=$(PW_DRIVER) CHROMIUM_PATH=$(CHROMIUM_PATH)"

## pg: make sure a PostgreSQL answers (DATABASE_URL, else 127.0.0.1:5432, else a private
## cluster in .data/pg) and print the URLs that run/test/bench will use.
pg:
	@pgenv="$$($(ENSURE_PG))"
	eval "$$pgenv"
	echo "DATABASE_URL=$$DATABASE_URL"
	echo "TENANTRY_TEST_POSTGRES=$${TENANTRY_TEST_POSTGRES:-(default)}"

## pg-stop: stop the private cluster in .data/pg, if one runs (the system PostgreSQL is left alone).
pg-stop:
	$(ENSURE_PG) stop

## run: build, migrate and seed the demo data, then serve on http://$TENANTRY_ADDR.
run: build
	@pgenv="$$($(ENSURE_PG))"
	eval "$$pgenv"
	admin="$${TENANTRY_ADMIN_EMAIL:-} (password from TENANTRY_ADMIN_PASSWORD)"
	if [ -z "$${TENANTRY_ADMIN_EMAIL:-}$${TENANTRY_ADMIN_PASSWORD:-}" ]; then
		export TENANTRY_ADMIN_EMAIL="$(DEMO_EMAIL)" TENANTRY_ADMIN_PASSWORD="$(DEMO_PASSWORD)"
		admin="$(DEMO_EMAIL) / $(DEMO_PASSWORD)"
	fi
	# Local development keeps the master key (which wraps every tenant's keyset) in .data/.
	if [ -z "$${TENANTRY_MASTER_KEY:-}$${TENANTRY_MASTER_KEY_FILE:-}" ]; then
		export TENANTRY_MASTER_KEY_FILE="$(CURDIR)/.data/master.key"
		if [ ! -f "$$TENANTRY_MASTER_KEY_FILE" ]; then
			mkdir -p .data
			bin/tenantry gen-master-key "$$TENANTRY_MASTER_KEY_FILE"
		fi
	fi
	bin/tenantry migrate
	bin/tenantry seed --demo --if-empty
	echo
	echo "  =================================================================="
	echo "   Tenantry:        http://$${TENANTRY_ADDR:-127.0.0.1:8080}"
	echo "   Platform admin:  $$admin"
	echo "   Executive:       $(DEMO_EXEC_EMAIL) / $(DEMO_PASSWORD)"
	echo "   Tenant portal:   http://$${TENANTRY_ADDR:-127.0.0.1:8080}/t/acme-holdings/login  admin@acme-holdings.example / $(DEMO_PASSWORD)"
	echo "   Database:        $$DATABASE_URL"
	echo "   Stop with Ctrl-C."
	echo "  =================================================================="
	echo
	exec bin/tenantry serve

## test: deps, generated files fresh, go vet, e2e prerequisites, PostgreSQL, then every Go test
## (including the Playwright e2e tests in ./e2e).
test: deps check-generated vet e2e-deps
	@pgenv="$$($(ENSURE_PG) test)"
	eval "$$pgenv"
	echo "tests create their databases on TENANTRY_TEST_POSTGRES=$${TENANTRY_TEST_POSTGRES:-(default)}"
	go test -count=1 -p 2 ./...

## bench: the benchmarks of docs/benchmarks.md, each as recorded there (they print their own
## p50/p99). The tenant-plane ones create thousands of schemas and take several minutes.
bench:
	@pgenv="$$($(ENSURE_PG) test)"
	eval "$$pgenv"
	echo "benchmarks use TENANTRY_TEST_POSTGRES=$${TENANTRY_TEST_POSTGRES:-(default)}; load: $$(cut -d' ' -f1-3 /proc/loadavg)"
	go test -run '^$$' -bench TenantListPage -benchtime 2000x ./web/
	go test -run '^$$' -bench TenantRead -benchtime 3000x ./internal/db/
	go test -run '^$$' -bench ConsumeAPI -benchtime 5s ./web/
	go test -run '^$$' -bench FlagsAPI -benchtime 5000x ./web/
	go test -run '^$$' -bench Consume -benchtime 3s ./internal/quota/
	go test -run '^$$' -bench EvaluateAlerts -benchtime 20x ./internal/quota/
	go test -run '^$$' -bench Hierarchy100k -benchtime 500x -timeout 20m ./internal/settings/
	go test -run '^$$' -bench . ./internal/keys/ ./internal/db/tenantscope/
	go test -run '^$$' -bench MigrateAllTenants -benchtime 3x -timeout 30m ./internal/db/
	go test -run '^$$' -bench TenantPlaneCreate -benchtime 20x -timeout 60m ./internal/db/
	go test -run '^$$' -bench Generate100k -benchtime 1x -timeout 30m ./internal/billing/
	go test -run '^$$' -bench 'Export1M|Purge20Tables' -benchtime 3x -timeout 30m ./internal/lifecycle/
	go test -run '^$$' -bench OutboxDelivery -benchtime 3000x ./internal/mail/
	go test -run '^$$' -bench SignupToPortal -benchtime 15x ./web/
	go test -run '^$$' -bench ProvisioningRuns -benchtime 200x -timeout 20m ./internal/provisioning/

## clean: build outputs and the Playwright driver dir (committed generated files, node_modules
## and the private database in .data stay; `make pg-stop && rm -rf .data` removes the database).
clean:
	rm -rf bin .cache e2e/screenshots
