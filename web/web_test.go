package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/web"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const password = "correct-horse-battery"

// testBundle is what each test gets: a running server on a real database, and its parts.
type testBundle struct {
	db    *db.DB
	ts    *httptest.Server
	users *identity.Service
	srv   *web.Server
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	d := dbtest.Open(t)
	srv, err := web.New(context.Background(), web.Config{DB: d, Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{db: d, ts: newTestServer(t, srv), users: identity.NewService(d.App), srv: srv}
}

func newTestServer(t testing.TB, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// user creates a platform user with a unique e-mail.
func (b *testBundle) user(t *testing.T, role identity.Role) identity.User {
	t.Helper()
	email := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + string(role) + "@example.com"
	u, err := b.users.Create(context.Background(), "test", identity.NewUser{Email: email, Name: "Test " + string(role), Role: role, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// client is a browser-like HTTP client: a cookie jar and no automatic redirects.
type client struct {
	t    testing.TB
	base string
	http *http.Client
	// secFetchSite, when set, is sent like a modern browser does.
	secFetchSite string
}

func (b *testBundle) client(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: b.ts.URL, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (c *client) do(method, path string, form url.Values, header http.Header) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.secFetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", c.secFetchSite)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	return c.do(http.MethodGet, path, nil, nil)
}

// post submits form to path; with the CSRF token of page, when page is not empty.
func (c *client) post(path string, form url.Values) (*http.Response, string) {
	return c.do(http.MethodPost, path, form, nil)
}

// token reads the CSRF token from a form on the page at path.
func (c *client) token(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	doc := parse(c.t, body)
	tok, ok := doc.Find(`input[name="_csrf"]`).Attr("value")
	if !ok || tok == "" {
		c.t.Fatalf("no CSRF token on %s", path)
	}
	return tok
}

func (c *client) signIn(email string) {
	c.t.Helper()
	form := url.Values{"email": {email}, "password": {password}, "_csrf": {c.token("/login")}}
	res, body := c.post("/login", form)
	if res.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign in as %s: status %d\n%s", email, res.StatusCode, body)
	}
}

func parse(t testing.TB, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func countTenants(t *testing.T, d *db.DB, slug string) int {
	t.Helper()
	var n int
	if err := d.AppPool.QueryRow(context.Background(), "SELECT count(*) FROM tenants WHERE slug = $1", slug).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
