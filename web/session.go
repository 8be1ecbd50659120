package web

import (
	"crypto/sha256"
	"crypto/sha512"
	"net/http"
	"strings"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/views/layouts"
)

const (
	sessionName   = "tenantry"
	sessionMaxAge = 12 * 60 * 60 // seconds
	keyUserID     = "uid"
	keyEpoch      = "epoch"
	ctxUser       = "tenantry.user"
)

// newSessionStore derives separate signing and encryption keys from one secret.
func newSessionStore(secret []byte) *sessions.CookieStore {
	hashKey := sha512.Sum512(append([]byte("tenantry-session-hash:"), secret...))
	blockKey := sha256.Sum256(append([]byte("tenantry-session-block:"), secret...))
	st := sessions.NewCookieStore(hashKey[:], blockKey[:])
	st.MaxAge(sessionMaxAge)
	return st
}

// session returns the request's session; a cookie that fails to decode yields a fresh session.
func (s *Server) session(c echo.Context) *sessions.Session {
	sess, _ := s.sessions.Get(c.Request(), sessionName)
	return sess
}

// saveSession writes a session cookie (the platform's or a tenant portal's): HttpOnly,
// SameSite=Lax, Secure when served over TLS; an emptied session deletes its cookie.
func (s *Server) saveSession(c echo.Context, sess *sessions.Session) error {
	sess.Options = &sessions.Options{
		Path: "/", MaxAge: sessionMaxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https",
	}
	if len(sess.Values) == 0 {
		sess.Options.MaxAge = -1
	}
	return sess.Save(c.Request(), c.Response())
}

// startSession signs u in on this browser.
func (s *Server) startSession(c echo.Context, u identity.User) error {
	sess := s.session(c)
	flashes := sess.Flashes()
	sess.Values = map[any]any{keyUserID: u.ID, keyEpoch: u.SessionEpoch}
	for _, f := range flashes {
		sess.AddFlash(f)
	}
	return s.saveSession(c, sess)
}

// endSession signs the browser out, keeping only flashes.
func (s *Server) endSession(c echo.Context) error {
	sess := s.session(c)
	delete(sess.Values, keyUserID)
	delete(sess.Values, keyEpoch)
	return s.saveSession(c, sess)
}

// flash queues a message for the next page this browser renders.
func (s *Server) flash(c echo.Context, kind, msg string) {
	sess := s.session(c)
	sess.AddFlash(kind + "|" + msg)
	if err := s.saveSession(c, sess); err != nil {
		s.log.Warn("save flash", "err", err)
	}
}

// takeFlashes returns and clears the queued messages.
func (s *Server) takeFlashes(c echo.Context) []layouts.Flash {
	sess := s.session(c)
	raw := sess.Flashes()
	if len(raw) == 0 {
		return nil
	}
	if err := s.saveSession(c, sess); err != nil {
		s.log.Warn("clear flashes", "err", err)
	}
	out := make([]layouts.Flash, 0, len(raw))
	for _, r := range raw {
		str, _ := r.(string)
		kind, msg, _ := strings.Cut(str, "|")
		out = append(out, layouts.Flash{Kind: kind, Message: msg})
	}
	return out
}

// currentUser is the signed-in platform user, if any.
func currentUser(c echo.Context) (identity.User, bool) {
	u, ok := c.Get(ctxUser).(identity.User)
	return u, ok
}

// loadUser puts the signed-in user in the context when the session is valid and not revoked.
func (s *Server) loadUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess := s.session(c)
		id, _ := sess.Values[keyUserID].(int64)
		if id == 0 {
			return next(c)
		}
		u, err := s.users.Get(c.Request().Context(), id)
		epoch, _ := sess.Values[keyEpoch].(int)
		switch {
		case err == nil && epoch == u.SessionEpoch:
			c.Set(ctxUser, u)
		case err == nil || err == identity.ErrNotFound: // revoked or deleted: drop the session
			if err := s.endSession(c); err != nil {
				return err
			}
		default:
			return err
		}
		return next(c)
	}
}

// requireUser sends anonymous visitors to the sign-in page, coming back here afterwards.
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := currentUser(c); ok {
			return next(c)
		}
		target := "/login"
		if c.Request().Method == http.MethodGet {
			target += "?next=" + urlQueryEscape(c.Request().URL.RequestURI())
		}
		return redirect(c, target)
	}
}

var errReadOnly = echo.NewHTTPError(http.StatusForbidden, "Your role is read-only: you can view everything but change nothing.")

// readOnlyForExecutives refuses every state-changing request of a user who may not write.
func (s *Server) readOnlyForExecutives(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !u.CanWrite() {
				return errReadOnly
			}
		}
		return next(c)
	}
}
