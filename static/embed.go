// Package static holds the browser assets that the web server serves under /static:
// css/app.css (built by `make css` from web/styles.css and tailwind.config.js) and the
// vendored js/htmx.min.js and js/echarts.min.js (copied from node_modules by `make assets`).
// All of them are committed, so `go build` works in a fresh clone; `make check-generated`
// verifies that they are up to date.
package static

import "embed"

// FS holds css/app.css and the js/ directory, embedded into the binary.
//
//go:embed css/app.css js
var FS embed.FS
