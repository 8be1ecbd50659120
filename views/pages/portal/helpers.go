package portal

import (
	"strconv"

	"github.com/a-h/templ"
)

func itoa(n int) string { return strconv.Itoa(n) }

func barWidth(p int) string { return "width: " + strconv.Itoa(max(0, min(100, p))) + "%" }

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func safeURL(u string) templ.SafeURL { return templ.SafeURL(u) }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
