package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/go-pdf/fpdf"
)

// PDFOptions adjusts the PDF rendering.
type PDFOptions struct {
	// Uncompressed leaves the page streams readable (tests look for text in them).
	Uncompressed bool
	// Issuer is the name printed as the invoice's sender.
	Issuer string
}

// WritePDF renders the invoice as an A4 PDF document: header with number, dates and status, the
// account it is addressed to, one table per tenant section with its subtotal, the total, the
// payments and the balance.
func WritePDF(w io.Writer, inv Invoice, opt PDFOptions) error {
	if opt.Issuer == "" {
		opt.Issuer = "Tenantry"
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(!opt.Uncompressed)
	pdf.SetTitle("Invoice "+inv.Number, true)
	pdf.SetAuthor(opt.Issuer, true)
	pdf.SetCreationDate(inv.CreatedAt)
	pdf.SetModificationDate(inv.CreatedAt)
	pdf.SetMargins(15, 15, 15)
	pdf.SetAutoPageBreak(true, 18)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252, the core fonts' encoding
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(120, 120, 120)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("Invoice %s · page %d of {nb}", inv.Number, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()

	pdf.SetFont("Helvetica", "B", 20)
	pdf.SetTextColor(20, 20, 20)
	pdf.CellFormat(110, 10, tr("Invoice "+inv.Number), "", 0, "L", false, 0, "")
	pdf.SetFont("Helvetica", "B", 12)
	pdf.CellFormat(0, 10, tr(opt.Issuer), "", 1, "R", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.SetTextColor(70, 70, 70)
	status := inv.Status
	if status == StatusDraft {
		status = "draft (not issued yet)"
	}
	pdf.CellFormat(0, 5, tr("Status: "+status), "", 1, "L", false, 0, "")
	pdf.Ln(4)

	y := pdf.GetY()
	pdf.SetFont("Helvetica", "B", 9)
	pdf.SetTextColor(120, 120, 120)
	pdf.CellFormat(90, 5, "BILL TO", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.SetTextColor(20, 20, 20)
	pdf.CellFormat(90, 5, tr(inv.AccountName), "", 1, "L", false, 0, "")
	if inv.AccountEmail != "" {
		pdf.CellFormat(90, 5, tr(inv.AccountEmail), "", 1, "L", false, 0, "")
	}
	pdf.SetXY(110, y)
	facts := [][2]string{
		{"Period", inv.PeriodStart.Format("2 Jan 2006") + " – " + inv.PeriodEnd.AddDate(0, 0, -1).Format("2 Jan 2006")},
		{"Issue date", inv.IssueDate.Format("2 Jan 2006")},
		{"Due date", inv.DueDate.Format("2 Jan 2006")},
		{"Currency", inv.Currency},
	}
	for _, f := range facts {
		pdf.SetX(110)
		pdf.SetFont("Helvetica", "", 9)
		pdf.SetTextColor(120, 120, 120)
		pdf.CellFormat(30, 5, tr(f[0]), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.SetTextColor(20, 20, 20)
		pdf.CellFormat(0, 5, tr(f[1]), "", 1, "R", false, 0, "")
	}
	pdf.Ln(6)

	cols := []float64{70, 25, 25, 25, 35} // description, used, billed, unit price, amount
	header := func() {
		pdf.SetFont("Helvetica", "B", 8)
		pdf.SetFillColor(241, 245, 249)
		pdf.SetTextColor(70, 70, 70)
		for i, h := range []string{"Item", "Used", "Billed units", "Unit price", "Amount"} {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(cols[i], 6, h, "B", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
	}
	for _, sec := range inv.Sections {
		if pdf.GetY() > 250 {
			pdf.AddPage()
		}
		pdf.SetFont("Helvetica", "B", 11)
		pdf.SetTextColor(20, 20, 20)
		pdf.CellFormat(0, 7, tr(fmt.Sprintf("%s (%s) · %s plan", sec.TenantName, sec.TenantSlug, sec.PlanName)), "", 1, "L", false, 0, "")
		header()
		pdf.SetFont("Helvetica", "", 9)
		pdf.SetTextColor(20, 20, 20)
		for _, l := range sec.Lines {
			used, billed := "", "1"
			desc := l.Description
			if l.Kind == "usage" {
				used = thousands(l.Used) + " " + l.Unit
				billed = thousands(l.Quantity)
				if l.Included > 0 {
					desc += fmt.Sprintf(" (%s included)", thousands(l.Included))
				}
			}
			pdf.CellFormat(cols[0], 6, tr(desc), "", 0, "L", false, 0, "")
			pdf.CellFormat(cols[1], 6, tr(used), "", 0, "R", false, 0, "")
			pdf.CellFormat(cols[2], 6, billed, "", 0, "R", false, 0, "")
			pdf.CellFormat(cols[3], 6, Price(l.UnitPrice), "", 0, "R", false, 0, "")
			pdf.CellFormat(cols[4], 6, Money(l.Amount), "", 1, "R", false, 0, "")
		}
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(cols[0]+cols[1]+cols[2]+cols[3], 6, tr("Subtotal "+sec.TenantName), "T", 0, "R", false, 0, "")
		pdf.CellFormat(cols[4], 6, Money(sec.Subtotal), "T", 1, "R", false, 0, "")
		pdf.Ln(3)
	}

	pdf.Ln(2)
	row := func(label, value string, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 11)
		pdf.CellFormat(145, 7, tr(label), "", 0, "R", false, 0, "")
		pdf.CellFormat(35, 7, value, "", 1, "R", false, 0, "")
	}
	row("Total ("+inv.Currency+")", Money(inv.Total), true)
	for _, p := range inv.Payments {
		label := "Paid " + p.PaidAt.UTC().Format("2 Jan 2006")
		if p.Reference != "" {
			label += " (" + p.Reference + ")"
		}
		row(label, "-"+Money(p.Amount), false)
	}
	if len(inv.Payments) > 0 || inv.Status == StatusIssued || inv.Status == StatusOverdue {
		row("Balance due", Money(inv.Balance()), true)
	}
	return pdf.Output(w)
}

// CSVHeader is the first row of the invoice CSV.
var CSVHeader = []string{"invoice", "period", "tenant_slug", "tenant_name", "plan", "kind", "dimension", "description",
	"used", "included", "quantity", "unit", "unit_price", "amount", "currency"}

// WriteCSV writes one row per line item, with the tenant it belongs to; the amounts add up to the
// invoice's total.
func WriteCSV(w io.Writer, inv Invoice) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, s := range inv.Sections {
		for _, l := range s.Lines {
			rec := []string{inv.Number, inv.PeriodStart.Format("2006-01"), s.TenantSlug, s.TenantName, s.PlanKey, l.Kind, l.Dimension,
				l.Description, strconv.FormatInt(l.Used, 10), strconv.FormatInt(l.Included, 10), strconv.FormatInt(l.Quantity, 10),
				l.Unit, Price(l.UnitPrice), Money(l.Amount), inv.Currency}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
