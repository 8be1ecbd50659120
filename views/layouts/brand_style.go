package layouts

import (
	"regexp"
	"strings"
)

var hexColour = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// BrandStyle is the <style> element that paints the tenant portal and signup pages in a brand's
// colours: CSS variables, and the few brand-* utility classes the components use re-pointed at
// them. Colours that are not #rrggbb are ignored (the default indigo stays), so nothing but a
// checked colour ever reaches the page.
func BrandStyle(primary, accent string) string {
	primary, accent = strings.ToLower(primary), strings.ToLower(accent)
	if !hexColour.MatchString(primary) {
		return ""
	}
	if !hexColour.MatchString(accent) {
		accent = primary
	}
	var b strings.Builder
	b.WriteString("<style data-testid=\"brand-style\">:root{--brand:" + primary + ";--brand-accent:" + accent + "}")
	b.WriteString(".portal-brand .bg-brand-600,.portal-brand .hover\\:bg-brand-700:hover{background-color:var(--brand)}")
	b.WriteString(".portal-brand .hover\\:bg-brand-700:hover{filter:brightness(.9)}")
	b.WriteString(".portal-brand .text-brand-700,.portal-brand .text-brand-600{color:var(--brand)}")
	b.WriteString(".portal-brand .border-brand-600{border-color:var(--brand)}")
	b.WriteString(".portal-brand .bg-brand-accent{background-color:var(--brand-accent)}.portal-brand .text-brand-accent{color:var(--brand-accent)}")
	b.WriteString(".portal-brand .focus-visible\\:ring-brand-500:focus-visible,.portal-brand .focus\\:ring-brand-500:focus{--tw-ring-color:var(--brand)}")
	b.WriteString(".portal-brand .focus\\:border-brand-500:focus{border-color:var(--brand)}")
	b.WriteString(".portal-brand .has-\\[\\:checked\\]\\:ring-brand-500:has(:checked){--tw-ring-color:var(--brand)}")
	b.WriteString("</style>")
	return b.String()
}
