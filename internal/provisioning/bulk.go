package provisioning

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// CSVColumns are the columns a bulk file must have, in any order.
var CSVColumns = []string{"name", "slug", "template", "admin_email", "parent"}

// Bulk limits.
const (
	MaxBatchRows  = 1000
	MaxBatchBytes = 2 << 20
)

// ErrBatchNotFound means no batch has the id.
var ErrBatchNotFound = errors.New("provisioning: batch not found")

// BatchRow is one line of a bulk file, with what is wrong with it.
type BatchRow struct {
	Line       int               `json:"line"`
	Name       string            `json:"name"`
	Slug       string            `json:"slug"`
	Template   string            `json:"template"`
	AdminEmail string            `json:"admin_email"`
	Parent     string            `json:"parent"`
	Errors     map[string]string `json:"errors,omitempty"`
	// TemplateID is the template the row names, resolved when it was checked.
	TemplateID *int64 `json:"template_id,omitempty"`
	RunID      *int64 `json:"run_id,omitempty"`
}

// Valid reports whether the row can be started.
func (r BatchRow) Valid() bool { return len(r.Errors) == 0 }

// Batch is an uploaded bulk file, checked row by row.
type Batch struct {
	ID        int64
	Filename  string
	Rows      []BatchRow `gorm:"serializer:json;type:jsonb"`
	FileError string
	CreatedBy string
	CreatedAt time.Time
	StartedAt *time.Time
}

// TableName places batches in the control plane.
func (Batch) TableName() string { return "tenantry.provisioning_batches" }

// Counts returns how many rows are valid and invalid.
func (b Batch) Counts() (valid, invalid int) {
	for _, r := range b.Rows {
		if r.Valid() {
			valid++
		} else {
			invalid++
		}
	}
	return valid, invalid
}

// CheckCSV reads a bulk file and stores it as a batch with each row's problems: wrong columns,
// a file that is not UTF-8 or not CSV, missing or malformed fields, reserved or taken slugs
// (also taken by an earlier line of the file), unknown or archived templates, unknown parents
// (an earlier line of the file may be the parent). A problem with the whole file is stored as
// the batch's FileError, so the page explaining it survives a reload too.
func (s *Service) CheckCSV(ctx context.Context, actor, filename string, data []byte) (Batch, error) {
	b := Batch{Filename: strings.TrimSpace(filename), CreatedBy: actor, Rows: []BatchRow{}}
	if b.Filename == "" {
		b.Filename = "upload.csv"
	}
	if len(b.Filename) > 200 {
		b.Filename = b.Filename[:200]
	}
	b.FileError = s.checkRows(ctx, &b, data)
	if b.Rows == nil || b.FileError != "" {
		b.Rows = []BatchRow{}
	}
	if !utf8.ValidString(b.Filename) {
		b.Filename = strings.ToValidUTF8(b.Filename, "?")
	}
	err := s.db.App.WithContext(ctx).Omit("CreatedAt", "StartedAt").Create(&b).Error
	return b, err
}

func (s *Service) checkRows(ctx context.Context, b *Batch, data []byte) string {
	if len(data) > MaxBatchBytes {
		return fmt.Sprintf("The file is larger than %d MB; split it into smaller files.", MaxBatchBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a byte-order mark some spreadsheets write
	if !utf8.Valid(data) {
		return "The file is not UTF-8 text. Save it as \"CSV UTF-8\" from your spreadsheet and upload it again."
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return "The file is not a CSV text file (it contains binary data)."
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return "The file is empty. Its first line must name the columns " + strings.Join(CSVColumns, ", ") + "."
	}
	if err != nil {
		return "The file is not valid CSV: " + csvProblem(err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	var missing, extra []string
	for _, c := range CSVColumns {
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	for h := range col {
		if !slices.Contains(CSVColumns, h) {
			extra = append(extra, strconv.Quote(h))
		}
	}
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 || len(header) != len(CSVColumns) {
		msg := "The first line must name exactly the columns " + strings.Join(CSVColumns, ", ") + "."
		if len(missing) > 0 {
			msg += " Missing: " + strings.Join(missing, ", ") + "."
		}
		if len(extra) > 0 {
			msg += " Not expected: " + strings.Join(extra, ", ") + "."
		}
		return msg
	}
	field := func(rec []string, name string) string {
		if i := col[name]; i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Rows = nil
			return "The file is not valid CSV: " + csvProblem(err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(b.Rows) == MaxBatchRows {
			b.Rows = nil
			return fmt.Sprintf("The file has more than %d rows; split it into smaller files.", MaxBatchRows)
		}
		row := BatchRow{Line: line, Name: field(rec, "name"), Slug: strings.ToLower(field(rec, "slug")), Template: field(rec, "template"),
			AdminEmail: strings.ToLower(field(rec, "admin_email")), Parent: strings.ToLower(field(rec, "parent")), Errors: map[string]string{}}
		if len(rec) != len(CSVColumns) {
			row.Errors["line"] = fmt.Sprintf("Has %d fields, want %d.", len(rec), len(CSVColumns))
		}
		b.Rows = append(b.Rows, row)
	}
	if len(b.Rows) == 0 {
		return "The file has no rows below its header line."
	}
	if err := s.checkFields(ctx, b.Rows); err != nil {
		b.Rows = nil
		return "The file could not be checked: " + err.Error()
	}
	return ""
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d: %s.", pe.StartLine, pe.Err)
	}
	return "it could not be read."
}

// checkFields fills each row's Errors.
func (s *Service) checkFields(ctx context.Context, rows []BatchRow) error {
	gdb := s.db.App.WithContext(ctx)
	var slugs []string
	for _, r := range rows {
		slugs = append(slugs, r.Slug, r.Parent)
	}
	var existing []string
	if err := gdb.Model(&tenant.Tenant{}).Where("slug IN ?", slugs).Pluck("slug", &existing).Error; err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, sl := range existing {
		taken[sl] = true
	}
	firstLine := map[string]int{} // slug → line of the first valid row with it
	tpl := map[string]*templates.Template{}
	tplErr := map[string]string{}
	for i := range rows {
		r := &rows[i]
		switch n := len([]rune(r.Name)); {
		case n == 0:
			r.Errors["name"] = "Enter the tenant's name."
		case n > 200:
			r.Errors["name"] = "Use at most 200 characters."
		}
		if p := SlugProblem(r.Slug); p != "" {
			r.Errors["slug"] = p
		} else if taken[r.Slug] {
			r.Errors["slug"] = "This slug is already taken."
		} else if l, dup := firstLine[r.Slug]; dup {
			r.Errors["slug"] = fmt.Sprintf("The same slug is on line %d of this file.", l)
		} else {
			firstLine[r.Slug] = r.Line
		}
		if p := EmailProblem(r.AdminEmail); p != "" {
			r.Errors["admin_email"] = strings.Replace(p, "Enter an e-mail address.", "Enter the admin's e-mail address.", 1)
		}
		if r.Template != "" {
			key := strings.ToLower(r.Template)
			if _, seen := tpl[key]; !seen && tplErr[key] == "" {
				t, err := s.templates.BySlugOrName(ctx, r.Template)
				switch {
				case errors.Is(err, templates.ErrNotFound):
					tplErr[key] = "No template has this slug or name."
				case errors.Is(err, templates.ErrArchived):
					tplErr[key] = "This template is archived."
				case err != nil:
					return err
				default:
					tpl[key] = &t
				}
			}
			if msg := tplErr[key]; msg != "" {
				r.Errors["template"] = msg
			} else {
				id := tpl[key].ID
				r.TemplateID = &id
			}
		}
		if r.Parent != "" && !taken[r.Parent] {
			if l, ok := firstLine[r.Parent]; !ok || l >= r.Line || r.Parent == r.Slug {
				r.Errors["parent"] = "No tenant has this slug (nor an earlier line of this file)."
			}
		}
		if len(r.Errors) > 0 && r.Errors["slug"] == "" && firstLine[r.Slug] == r.Line {
			delete(firstLine, r.Slug) // an invalid row cannot be a parent
		}
	}
	return nil
}

// Batch returns the batch with id.
func (s *Service) Batch(ctx context.Context, id int64) (Batch, error) {
	var b Batch
	err := s.db.App.WithContext(ctx).Take(&b, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return b, ErrBatchNotFound
	}
	return b, err
}

// RecentBatches returns the newest batches.
func (s *Service) RecentBatches(ctx context.Context, n int) ([]Batch, error) {
	var bs []Batch
	err := s.db.App.WithContext(ctx).Order("id DESC").Limit(n).Find(&bs).Error
	return bs, err
}

// BatchProgress counts the batch's runs by state.
func (s *Service) BatchProgress(ctx context.Context, id int64) (map[string]int, error) {
	var rows []struct {
		State string
		N     int
	}
	err := s.db.App.WithContext(ctx).Model(&Run{}).Select("state, count(*) AS n").Where("batch_id = ?", id).Group("state").Scan(&rows).Error
	out := map[string]int{}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, err
}

// RunStatesOf maps the batch's run ids to their states.
func (s *Service) RunStatesOf(ctx context.Context, batchID int64) (map[int64]string, error) {
	var rows []struct {
		ID    int64
		State string
	}
	err := s.db.App.WithContext(ctx).Model(&Run{}).Select("id, state").Where("batch_id = ?", batchID).Scan(&rows).Error
	out := map[int64]string{}
	for _, r := range rows {
		out[r.ID] = r.State
	}
	return out, err
}

// StartBatch starts one run per valid row, in file order (a parent before its children), each in
// its own transaction (the batch row is locked FOR NO KEY UPDATE, which the runs' references to
// it do not wait for): a row refused now (its slug was taken meanwhile) gets its error and the
// others start anyway. planKey is the plan of rows without a template. A batch starts once.
func (s *Service) StartBatch(ctx context.Context, id int64, actor, planKey string) (Batch, error) {
	var b Batch
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "NO KEY UPDATE"}).Take(&b, id).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrBatchNotFound
		} else if err != nil {
			return err
		}
		if b.StartedAt != nil || b.FileError != "" {
			return fmt.Errorf("%w: batch %d was already started or has no valid rows", ErrState, id)
		}
		started := 0
		for i := range b.Rows {
			r := &b.Rows[i]
			if !r.Valid() || r.RunID != nil {
				continue
			}
			run, err := s.Start(ctx, Request{Name: r.Name, Slug: r.Slug, TemplateID: r.TemplateID, PlanKey: planKey,
				AdminEmail: r.AdminEmail, ParentSlug: r.Parent, Actor: actor, BatchID: &b.ID})
			if fields := validation.Fields(err); fields != nil {
				r.Errors = map[string]string(fields)
				continue
			}
			if err != nil {
				return err
			}
			r.RunID = &run.ID
			started++
		}
		now := s.now()
		b.StartedAt = &now
		rowsJSON, err := json.Marshal(b.Rows)
		if err != nil {
			return err
		}
		if err := tx.Model(&Batch{}).Where("id = ?", b.ID).Updates(map[string]any{"rows": gorm.Expr("?::jsonb", string(rowsJSON)), "started_at": now}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{Actor: actor, Action: "provisioning.batch_started", Target: b.Filename,
			Detail: audit.Detail(map[string]any{"batch_id": b.ID, "runs": started, "rows": len(b.Rows)})})
	})
	return b, err
}
