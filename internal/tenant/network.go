package tenant

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// CIDRList is a tenant's IP allowlist, stored as PostgreSQL cidr[]. Empty allows every address.
type CIDRList []netip.Prefix

// Scan reads the array's text form, e.g. {10.0.0.0/8,192.0.2.7/32}.
func (l *CIDRList) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		*l = nil
		return nil
	default:
		return fmt.Errorf("tenant: cannot scan %T into CIDRList", src)
	}
	s = strings.Trim(s, "{}")
	*l = nil
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.Trim(part, `"`))
		if err != nil {
			return err
		}
		*l = append(*l, p)
	}
	return nil
}

// Value writes the array's text form.
func (l CIDRList) Value() (driver.Value, error) {
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = p.String()
	}
	return "{" + strings.Join(parts, ",") + "}", nil
}

// String lists the prefixes one per line, as the form shows them.
func (l CIDRList) String() string {
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = p.String()
	}
	return strings.Join(parts, "\n")
}

// Allows reports whether addr may reach the tenant: always when the list is empty.
func (l CIDRList) Allows(addr netip.Addr) bool {
	if len(l) == 0 {
		return true
	}
	addr = addr.Unmap()
	return slices.ContainsFunc(l, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// ParseCIDRList reads an allowlist typed by a person: prefixes or single addresses separated by
// commas, spaces or new lines. It reports the first entry that is not valid.
func ParseCIDRList(text string) (CIDRList, error) {
	var l CIDRList
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not an address or a CIDR range such as 203.0.113.0/24", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has host bits set; did you mean %s?", f, p.Masked())
		}
		if !slices.Contains(l, p) {
			l = append(l, p)
		}
	}
	if len(l) > 100 {
		return nil, errors.New("use at most 100 entries")
	}
	return l, nil
}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

// Network is the input for a tenant's network settings.
type Network struct {
	Allowlist string // as typed
	Hostname  string // empty for none
}

// SetNetwork changes a tenant's IP allowlist and own hostname, recording before and after.
func (s *Service) SetNetwork(ctx context.Context, actor, slug string, n Network) (Tenant, error) {
	errs := validation.Errors{}
	list, err := ParseCIDRList(n.Allowlist)
	if err != nil {
		errs.Add("ip_allowlist", err.Error())
	}
	host := strings.ToLower(strings.TrimSpace(n.Hostname))
	if host != "" && (len(host) > 253 || !hostnameRE.MatchString(host)) {
		errs.Add("hostname", "Enter a host name such as portal.example.com, without https:// or a path.")
	}
	var t Tenant
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("slug = ?", slug).First(&t).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if host != "" && errs["hostname"] == "" {
			var taken int64
			if err := tx.Model(&Tenant{}).Where("hostname = ? AND id <> ?", host, t.ID).Count(&taken).Error; err != nil {
				return err
			}
			if taken > 0 {
				errs.Add("hostname", "Another tenant already uses this host name.")
			}
		}
		if err := errs.Err(); err != nil {
			return err
		}
		before := map[string]any{"ip_allowlist": t.IPAllowlist.String(), "hostname": deref(t.Hostname)}
		var hostVal *string
		if host != "" {
			hostVal = &host
		}
		if err := tx.Model(&t).Updates(map[string]any{"ip_allowlist": list, "hostname": hostVal, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		t.IPAllowlist, t.Hostname = list, hostVal
		return audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: actor, Action: "tenant.network_changed", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"before": before, "after": map[string]any{"ip_allowlist": list.String(), "hostname": host}})})
	})
	return t, err
}

// ByHostname returns the tenant whose portal is served on host.
func (s *Service) ByHostname(ctx context.Context, host string) (Tenant, error) {
	var t Tenant
	err := s.db.WithContext(ctx).Where("hostname = ?", strings.ToLower(host)).First(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, ErrNotFound
	}
	return t, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
