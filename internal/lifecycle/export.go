package lifecycle

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
)

// Export is one export archive of a tenant's data, a row of lifecycle_exports.
type Export struct {
	ID          int64
	TenantID    int64
	State       string
	RequestedBy string
	Attempts    int
	TablesTotal int
	TablesDone  int
	RowsDone    int64
	Bytes       int64
	FileName    string
	SHA256      string `gorm:"column:sha256"`
	Manifest    []byte `gorm:"type:jsonb"`
	Error       string
	HeartbeatAt *time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	ExpiresAt   *time.Time
	DeletedAt   *time.Time
	CreatedAt   time.Time `gorm:"->"`
}

// TableName places exports in the control plane.
func (Export) TableName() string { return "tenantry.lifecycle_exports" }

// Export states.
const (
	ExportPending = "pending"
	ExportRunning = "running"
	ExportDone    = "done"
	ExportFailed  = "failed"
	ExportDeleted = "deleted"
)

// Manifest describes an archive: every file with its size, row count and SHA-256.
type Manifest struct {
	Format    string          `json:"format"`
	Tenant    ManifestTenant  `json:"tenant"`
	CreatedAt time.Time       `json:"created_at"`
	Tables    []ManifestTable `json:"tables"`
	Files     []ManifestFile  `json:"files"`
}

// ManifestTenant names the tenant exported.
type ManifestTenant struct {
	ID    int64  `json:"id"`
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	State string `json:"state"`
	Plan  string `json:"plan"`
}

// ManifestTable is one exported table.
type ManifestTable struct {
	Name   string `json:"name"`   // schema-qualified
	Source string `json:"source"` // "tenant" (its own schema) or "platform" (its rows of a control-plane table)
	Rows   int64  `json:"rows"`
}

// ManifestFile is one file of the archive. Rows is -1 for documents that are not tables.
type ManifestFile struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// ExportFormat is the manifest's format name.
const ExportFormat = "tenantry.export/v1"

// excludedPlatformTables hold key material or are written after the data is gone.
var excludedPlatformTables = []string{"tenant_keysets", "destruction_certificates"}

// RequestExport queues an export of the tenant's data unless one is already pending or running,
// and returns it.
func (s *Service) RequestExport(ctx context.Context, actor string, tenantID int64) (Export, error) {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return Export{}, err
	}
	if t.State == Purged || t.State == "provisioning" {
		return Export{}, &TransitionError{From: t.State, To: t.State, Reason: "a tenant that is " + t.State + " has no data to export"}
	}
	var e Export
	err = s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended('lifecycle.export.' || ?::text, 0))", strconv.FormatInt(tenantID, 10)).Error; err != nil {
			return err
		}
		err := tx.Where("tenant_id = ? AND state IN ('pending', 'running')", tenantID).Order("id DESC").Take(&e).Error
		if err == nil {
			return nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		e = Export{TenantID: tenantID, State: ExportPending, RequestedBy: actor}
		if err := tx.Omit("Manifest").Create(&e).Error; err != nil {
			return err
		}
		if err := s.enqueueExport(ctx, tx, e.ID); err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.export_requested", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"export": e.ID})})
	})
	return e, err
}

// ExportByID returns one export of the tenant.
func (s *Service) ExportByID(ctx context.Context, tenantID, id int64) (Export, error) {
	var e Export
	err := s.d.App.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Take(&e).Error
	return e, err
}

// Exports lists the tenant's exports, newest first.
func (s *Service) Exports(ctx context.Context, tenantID int64) ([]Export, error) {
	var es []Export
	err := s.d.App.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("id DESC").Limit(20).Find(&es).Error
	return es, err
}

// LatestExport returns the tenant's newest export; with done, its newest finished one whose
// archive is still kept.
func (s *Service) LatestExport(ctx context.Context, tenantID int64, done bool) (Export, bool, error) {
	var e Export
	q := s.d.App.WithContext(ctx).Where("tenant_id = ?", tenantID)
	if done {
		q = q.Where("state = 'done'")
	}
	err := q.Order("id DESC").Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return e, false, nil
	}
	return e, err == nil, err
}

// ArchivePath is where an export's archive is kept.
func (s *Service) ArchivePath(e Export) string {
	return filepath.Join(s.dir, e.FileName)
}

// OpenArchive opens a finished export's archive for download, refusing expired or deleted ones.
func (s *Service) OpenArchive(ctx context.Context, tenantID, id int64) (*os.File, Export, error) {
	e, err := s.ExportByID(ctx, tenantID, id)
	if err != nil {
		return nil, e, err
	}
	if e.State != ExportDone {
		return nil, e, ErrNoExport
	}
	if e.ExpiresAt != nil && !s.Now().Before(*e.ExpiresAt) {
		return nil, e, ErrExportExpired
	}
	f, err := os.Open(s.ArchivePath(e))
	return f, e, err
}

// staleAfter is how long a running export may go without a heartbeat before it is taken to have
// crashed and is started again.
const staleAfter = 2 * time.Minute

// RunOpenExports runs every pending export and every running one whose worker stopped (a crash):
// the job that picks it up again starts it from scratch, which is idempotent.
func (s *Service) RunOpenExports(ctx context.Context) (int, error) {
	var ids []int64
	err := s.d.App.WithContext(ctx).Model(&Export{}).
		Where("state = 'pending' OR (state = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < ?))", time.Now().UTC().Add(-staleAfter)).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.RunExport(ctx, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// RunExport builds the archive of export id: every table of the tenant's schema (found in the
// catalogue), the tenant's rows of every control-plane table with a tenant_id column (quotas,
// usage history, audit trail, invoices, ...), its registry row, effective settings and quota
// limits, each table as JSON Lines and CSV, and manifest.json with rows and SHA-256 per file. All
// tables are read in one REPEATABLE READ snapshot. The archive is written to a temporary file and
// renamed when complete, so a crash leaves no half archive; running it again starts over.
func (s *Service) RunExport(ctx context.Context, id int64) error {
	s.running.Lock()
	defer s.running.Unlock()
	var e Export
	if err := s.d.App.WithContext(ctx).Take(&e, id).Error; err != nil {
		return err
	}
	if e.State == ExportDone || e.State == ExportDeleted {
		return nil
	}
	t, err := s.tenantByID(ctx, e.TenantID)
	if err != nil {
		return err
	}
	// Claim it: pending, failed, or running without a heartbeat for staleAfter (its worker died).
	// Another node working it now keeps it, so no two write the same archive.
	now := time.Now().UTC()
	claim := s.d.App.WithContext(ctx).Model(&Export{}).
		Where("id = ? AND (state IN ('pending', 'failed') OR (state = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < ?)))", id, now.Add(-staleAfter)).
		Updates(map[string]any{"state": ExportRunning, "attempts": gorm.Expr("attempts + 1"), "started_at": now, "heartbeat_at": now,
			"tables_done": 0, "rows_done": 0, "bytes": 0, "error": ""})
	if claim.Error != nil {
		return claim.Error
	}
	if claim.RowsAffected == 0 {
		return nil
	}
	// A heartbeat every 30 s while the archive is written, however long one table takes, so no
	// other worker takes the export over while this one is alive.
	beatCtx, stopBeat := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-beatCtx.Done():
				return
			case <-tick.C:
				_ = s.d.App.WithContext(beatCtx).Model(&Export{}).Where("id = ? AND state = 'running'", id).Update("heartbeat_at", time.Now().UTC()).Error
			}
		}
	}()
	m, name, sum, size, err := s.writeArchive(ctx, t, id)
	stopBeat()
	if err != nil {
		_ = s.d.App.WithContext(context.WithoutCancel(ctx)).Model(&Export{}).Where("id = ?", id).
			Updates(map[string]any{"state": ExportFailed, "error": err.Error()}).Error
		return err
	}
	pol, err := s.planPolicy(ctx, t)
	if err != nil {
		return err
	}
	mj, _ := json.Marshal(m)
	var rows int64
	for _, tb := range m.Tables {
		rows += tb.Rows
	}
	expires := s.Now().Add(time.Duration(pol.ExportKeepDays) * 24 * time.Hour)
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Export{}).Where("id = ?", id).Updates(map[string]any{
			"state": ExportDone, "file_name": name, "sha256": sum, "bytes": size, "manifest": mj, "rows_done": rows,
			"tables_done": len(m.Tables), "tables_total": len(m.Tables), "finished_at": time.Now().UTC(), "expires_at": expires}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: "system:lifecycle", Action: "tenant.exported", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"export": id, "file": name, "sha256": sum, "bytes": size, "tables": len(m.Tables), "rows": rows, "expires_at": expires})})
	})
}

// planPolicy is the policy the tenant's decommissioning started with, or its current one.
func (s *Service) planPolicy(ctx context.Context, t tenant.Tenant) (Policy, error) {
	if p, ok, err := s.PlanOf(ctx, t.ID); err != nil {
		return Policy{}, err
	} else if ok && p.Open() {
		return Policy(p.Policy), nil
	}
	return s.PolicyFor(ctx, t)
}

type exportTable struct {
	schema, name, source string
	where                string // " WHERE …" on alias t, scoping a platform table to the tenant
}

func tenantWhere(tenantID int64) string {
	return " WHERE t.tenant_id = " + strconv.FormatInt(tenantID, 10)
}

// tablesOf finds what to export in the catalogue.
func tablesOf(ctx context.Context, tx pgx.Tx, tenantID int64) ([]exportTable, error) {
	var out []exportTable
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`, db.TenantSchema(tenantID))
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		out = append(out, exportTable{schema: db.TenantSchema(tenantID), name: n, source: "tenant"})
	}
	rows, err = tx.Query(ctx, `SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
		AND NOT c.relispartition ORDER BY c.relname`, db.Schema)
	if err != nil {
		return nil, err
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if slices.Contains(excludedPlatformTables, n) {
			continue
		}
		out = append(out, exportTable{schema: db.Schema, name: n, source: "platform", where: tenantWhere(tenantID)})
	}
	// Control-plane tables without a tenant_id whose rows belong to a row that has one (invoice
	// lines to their invoice): found through their foreign key, one hop.
	rows, err = tx.Query(ctx, `SELECT DISTINCT ON (c.relname) c.relname, a.attname, p.relname, pa.attname
		FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_class p ON p.oid = k.confrelid
		JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
		JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
		WHERE k.contype = 'f' AND n.nspname = $1 AND cardinality(k.conkey) = 1 AND c.relkind IN ('r', 'p')
		  AND NOT c.relispartition AND p.relnamespace = n.oid AND NOT (p.relname = ANY($2))
		  AND NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = c.oid AND x.attname = 'tenant_id' AND NOT x.attisdropped)
		  AND EXISTS (SELECT 1 FROM pg_attribute y WHERE y.attrelid = p.oid AND y.attname = 'tenant_id' AND NOT y.attisdropped)
		ORDER BY c.relname, p.relname`, db.Schema, excludedPlatformTables)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var child, col, parent, pcol string
		if err := rows.Scan(&child, &col, &parent, &pcol); err != nil {
			return nil, err
		}
		if slices.Contains(excludedPlatformTables, child) {
			continue
		}
		out = append(out, exportTable{schema: db.Schema, name: child, source: "platform",
			where: " WHERE t." + pgx.Identifier{col}.Sanitize() + " IN (SELECT p." + pgx.Identifier{pcol}.Sanitize() + " FROM " +
				pgx.Identifier{db.Schema, parent}.Sanitize() + " p WHERE p.tenant_id = " + strconv.FormatInt(tenantID, 10) + ")"})
	}
	return out, rows.Err()
}

func (et exportTable) ident() string { return pgx.Identifier{et.schema, et.name}.Sanitize() }

// fileWriter hashes, counts bytes and counts lines of one archive entry.
type fileWriter struct {
	w     io.Writer
	h     hash.Hash
	n     int64
	lines int64
}

func (f *fileWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	f.lines += int64(bytes.Count(p[:n], []byte{'\n'}))
	return n, err
}

func (s *Service) writeArchive(ctx context.Context, t tenant.Tenant, exportID int64) (Manifest, string, string, int64, error) {
	m := Manifest{Format: ExportFormat, CreatedAt: s.Now(),
		Tenant: ManifestTenant{ID: t.ID, Slug: t.Slug, Name: t.Name, State: t.State, Plan: t.PlanKey}}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return m, "", "", 0, err
	}
	name := fmt.Sprintf("tenant-%d-%s-export-%d.zip", t.ID, t.Slug, exportID)
	tmp, err := os.CreateTemp(s.dir, name+".*.tmp")
	if err != nil {
		return m, "", "", 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	zw := zip.NewWriter(bw)
	// The fastest deflate: exports are large and mostly text, so this still shrinks them ~8x,
	// at several times the speed of the default level.
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })

	add := func(file string, write func(w io.Writer) error, table bool) (ManifestFile, error) {
		zf, err := zw.CreateHeader(&zip.FileHeader{Name: file, Method: zip.Deflate, Modified: m.CreatedAt})
		if err != nil {
			return ManifestFile{}, err
		}
		fw := &fileWriter{w: zf, h: sha256.New()}
		if err := write(fw); err != nil {
			return ManifestFile{}, fmt.Errorf("%s: %w", file, err)
		}
		mf := ManifestFile{Name: file, Rows: -1, Bytes: fw.n, SHA256: hex.EncodeToString(fw.h.Sum(nil))}
		if table {
			mf.Rows = fw.lines
		}
		m.Files = append(m.Files, mf)
		return mf, nil
	}
	jsonDoc := func(v any) func(io.Writer) error {
		return func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
	}

	// Documents from the services: effective settings and quota limits.
	eff, err := settings.NewService(s.d.App, s.tenants).Effective(ctx, &t)
	if err != nil {
		return m, "", "", 0, fmt.Errorf("effective settings: %w", err)
	}
	type setting struct {
		Key, Value, Source string
	}
	var sets []setting
	for _, e := range eff {
		sets = append(sets, setting{Key: e.Key.Key, Value: e.Value, Source: e.Source})
	}
	if _, err := add("settings.json", jsonDoc(sets), false); err != nil {
		return m, "", "", 0, err
	}
	limits, err := quota.NewService(s.d).Limits(ctx, t.ID)
	if err != nil {
		return m, "", "", 0, fmt.Errorf("quota limits: %w", err)
	}
	type limit struct {
		Dimension        string
		Soft, Hard, Used int64
		ResetAt          time.Time
		State            string
	}
	var ls []limit
	for _, l := range limits {
		ls = append(ls, limit{Dimension: l.Dimension.Key, Soft: l.Soft, Hard: l.Hard, Used: l.Used, ResetAt: l.ResetAt, State: l.State})
	}
	if _, err := add("quota_limits.json", jsonDoc(ls), false); err != nil {
		return m, "", "", 0, err
	}

	// Every table, in one snapshot, as the owner (it reads the tenant's schema and the control
	// plane without row-level security, so the WHERE clause is what scopes platform tables).
	tx, err := s.d.OwnerPool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return m, "", "", 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+db.OwnerRole); err != nil {
		return m, "", "", 0, err
	}
	var regRow []byte
	if err := tx.QueryRow(ctx, "SELECT row_to_json(t)::text FROM tenantry.tenants t WHERE t.id = $1", t.ID).Scan(&regRow); err != nil {
		return m, "", "", 0, err
	}
	if _, err := add("tenant.json", func(w io.Writer) error { _, err := w.Write(append(regRow, '\n')); return err }, false); err != nil {
		return m, "", "", 0, err
	}
	tables, err := tablesOf(ctx, tx, t.ID)
	if err != nil {
		return m, "", "", 0, err
	}
	_ = s.d.App.WithContext(ctx).Model(&Export{}).Where("id = ?", exportID).Update("tables_total", len(tables)).Error
	pg := tx.Conn().PgConn()
	var rowsDone, bytesDone int64
	for i, et := range tables {
		base := et.source + "/" + et.name
		// One JSON object per line: JSON escapes every control character, so with a quote and a
		// delimiter that never occur in it, COPY's CSV mode passes each object through verbatim.
		jq := "COPY (SELECT row_to_json(t) FROM " + et.ident() + " t" + et.where + ") TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
		jf, err := add(base+".jsonl", func(w io.Writer) error { _, err := pg.CopyTo(ctx, w, jq); return err }, true)
		if err != nil {
			return m, "", "", 0, err
		}
		cq := "COPY (SELECT * FROM " + et.ident() + " t" + et.where + ") TO STDOUT WITH (FORMAT csv, HEADER true)"
		cf, err := add(base+".csv", func(w io.Writer) error { _, err := pg.CopyTo(ctx, w, cq); return err }, true)
		if err != nil {
			return m, "", "", 0, err
		}
		// The CSV's line count includes its header and any newlines inside values; its row count
		// is the table's, which the JSON Lines file gives exactly.
		m.Files[len(m.Files)-1].Rows = jf.Rows
		m.Tables = append(m.Tables, ManifestTable{Name: et.schema + "." + et.name, Source: et.source, Rows: jf.Rows})
		rowsDone += jf.Rows
		bytesDone += jf.Bytes + cf.Bytes
		_ = s.d.App.WithContext(ctx).Model(&Export{}).Where("id = ?", exportID).Updates(map[string]any{
			"tables_done": i + 1, "rows_done": rowsDone, "bytes": bytesDone, "heartbeat_at": time.Now().UTC()}).Error
	}
	if err := tx.Commit(ctx); err != nil {
		return m, "", "", 0, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, "", "", 0, err
	}
	zf, err := zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate, Modified: m.CreatedAt})
	if err != nil {
		return m, "", "", 0, err
	}
	if _, err := zf.Write(append(mb, '\n')); err != nil {
		return m, "", "", 0, err
	}
	if err := zw.Close(); err != nil {
		return m, "", "", 0, err
	}
	if err := bw.Flush(); err != nil {
		return m, "", "", 0, err
	}
	if err := tmp.Sync(); err != nil {
		return m, "", "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return m, "", "", 0, err
	}
	final := filepath.Join(s.dir, name)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return m, "", "", 0, err
	}
	sum, size, err := fileSHA256(final)
	return m, name, sum, size, err
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// VerifyArchive checks an export archive against its manifest: every listed file is present with
// its size, SHA-256 and row count (JSON Lines lines, CSV records after the header), and nothing
// unlisted is in the archive. It returns the manifest.
func VerifyArchive(path string) (Manifest, error) {
	var m Manifest
	zr, err := zip.OpenReader(path)
	if err != nil {
		return m, fmt.Errorf("not a readable zip archive: %w", err)
	}
	defer zr.Close()
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		byName[f.Name] = f
	}
	mf, ok := byName["manifest.json"]
	if !ok {
		return m, errors.New("the archive has no manifest.json")
	}
	r, err := mf.Open()
	if err != nil {
		return m, err
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	err = dec.Decode(&m)
	r.Close()
	if err != nil {
		return m, fmt.Errorf("manifest.json: %w", err)
	}
	if m.Format != ExportFormat {
		return m, fmt.Errorf("manifest.json: format %q, want %q", m.Format, ExportFormat)
	}
	var problems []string
	listed := map[string]bool{"manifest.json": true}
	for _, want := range m.Files {
		listed[want.Name] = true
		f, ok := byName[want.Name]
		if !ok {
			problems = append(problems, want.Name+": missing")
			continue
		}
		got, err := measure(f, want.Name)
		if err != nil {
			problems = append(problems, want.Name+": "+err.Error())
			continue
		}
		if got.SHA256 != want.SHA256 {
			problems = append(problems, want.Name+": SHA-256 differs from the manifest")
		}
		if got.Bytes != want.Bytes {
			problems = append(problems, fmt.Sprintf("%s: %d bytes, manifest says %d", want.Name, got.Bytes, want.Bytes))
		}
		if want.Rows >= 0 && got.Rows != want.Rows {
			problems = append(problems, fmt.Sprintf("%s: %d rows, manifest says %d", want.Name, got.Rows, want.Rows))
		}
	}
	var extra []string
	for n := range byName {
		if !listed[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		problems = append(problems, n+": not listed in the manifest")
	}
	if len(problems) > 0 {
		return m, errors.New("archive does not match its manifest:\n  " + strings.Join(problems, "\n  "))
	}
	return m, nil
}

func measure(f *zip.File, name string) (ManifestFile, error) {
	r, err := f.Open()
	if err != nil {
		return ManifestFile{}, err
	}
	defer r.Close()
	h := sha256.New()
	var buf bytes.Buffer
	isCSV := strings.HasSuffix(name, ".csv")
	var w io.Writer = h
	if isCSV {
		w = io.MultiWriter(h, &buf)
	}
	fw := &fileWriter{w: w, h: sha256.New()}
	if _, err := io.Copy(fw, r); err != nil {
		return ManifestFile{}, err
	}
	mf := ManifestFile{Name: name, Bytes: fw.n, SHA256: hex.EncodeToString(h.Sum(nil)), Rows: fw.lines}
	if isCSV {
		cr := csv.NewReader(&buf)
		cr.FieldsPerRecord = -1
		recs := int64(0)
		for {
			_, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return mf, fmt.Errorf("CSV: %w", err)
			}
			recs++
		}
		mf.Rows = max(recs-1, 0) // the header
	}
	return mf, nil
}

// RecordDownload audits a download of an export archive.
func (s *Service) RecordDownload(ctx context.Context, actor string, t tenant.Tenant, e Export) error {
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: actor, Action: "tenant.export_downloaded", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"export": e.ID, "file": e.FileName, "sha256": e.SHA256})})
	})
}
