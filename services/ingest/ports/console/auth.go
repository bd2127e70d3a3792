package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/leadflow/leadflow/pkg/ops"
)

// Cookie names. Both are HttpOnly, SameSite=Strict, scoped to Base, and
// Secure when the console is reached over TLS.
const (
	sessionCookie = "leadflow_console"
	loginCookie   = "leadflow_console_login" // the sign-in form's CSRF token
	csrfField     = "csrf"
)

// session is one sign-in. Only the scope and a fingerprint of the key are
// kept, never the key.
type session struct {
	id      string
	admin   bool
	keyID   string // first 8 hex of SHA-256(key), for logs
	csrf    string
	expires time.Time

	mu       sync.Mutex
	flash    string
	previews map[string]preview // replay dry runs that may be run
}

// takeFlash returns the one-time notice and clears it.
func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (s *session) setFlash(msg string) {
	s.mu.Lock()
	s.flash = msg
	s.mu.Unlock()
}

// sessions is the server-side store, in memory: a restart signs everyone
// out, and behind several ingest replicas the load balancer must keep a
// browser on one replica (sticky sessions).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

// maxSessions bounds memory; the oldest sign-in goes first.
const maxSessions = 10000

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, ttl: ttl, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *sessions) create(key string, admin bool) *session {
	sum := sha256.Sum256([]byte(key))
	s := &session{id: randomToken(), admin: admin, keyID: hex.EncodeToString(sum[:4]), csrf: randomToken(),
		expires: st.now().Add(st.ttl), previews: map[string]preview{}}
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	for id, old := range st.m {
		if now.After(old.expires) {
			delete(st.m, id)
		}
	}
	if len(st.m) >= maxSessions {
		var oldest *session
		for _, old := range st.m {
			if oldest == nil || old.expires.Before(oldest.expires) {
				oldest = old
			}
		}
		delete(st.m, oldest.id)
	}
	st.m[s.id] = s
	return s
}

// get returns the request's live session, or nil.
func (st *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return st.byID(ck.Value)
}

func (st *sessions) byID(id string) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil {
		return nil
	}
	if st.now().After(s.expires) {
		delete(st.m, id)
		return nil
	}
	return s
}

func (st *sessions) delete(id string) {
	st.mu.Lock()
	delete(st.m, id)
	st.mu.Unlock()
}

// secure reports whether the browser reached us over TLS, directly or
// through a proxy that terminated it.
func secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, expires time.Time) {
	ck := &http.Cookie{Name: name, Value: value, Path: Base, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
		ck.MaxAge = int(time.Until(expires).Seconds())
	}
	http.SetCookie(w, ck)
}

type ctxKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(ctxKey{}).(*session)
	return s
}

func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// requireSession sends a browser without a live session to the sign-in
// page (and back where it was going afterwards).
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if s == nil {
			login := Base + "/login"
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				login += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			switch {
			case isHTMX(r):
				w.Header().Set("HX-Redirect", login)
				http.Error(w, "Your sign-in has expired. Sign in again.", http.StatusUnauthorized)
			case r.Header.Get("Accept") == "text/event-stream":
				// A live stream cannot redirect; the page says it stopped.
				http.Error(w, "Your sign-in has expired. Sign in again.", http.StatusUnauthorized)
			default:
				// A page, or a form posted after the sign-in ended: sign in
				// again (nothing was done).
				http.Redirect(w, r, login, http.StatusSeeOther)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

// checkCSRF refuses any state-changing request without the session's token
// (a form field, or the X-CSRF-Token header).
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		s := sessionOf(r)
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		token := r.Header.Get("X-CSRF-Token")
		if token == "" {
			token = r.PostFormValue(csrfField)
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) != 1 {
			c.cfg.Log.Warn().Str("path", r.URL.Path).Str("key", s.keyID).Msg("console: request without a valid CSRF token refused")
			c.problem(w, r, s, http.StatusForbidden, "This form has expired or did not come from this console. Reload the page and try again.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAdmin: read-only keys see, admin keys act.
func (c *Console) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r)
		if !s.admin {
			c.problem(w, r, s, http.StatusForbidden, "This action needs an admin API key. You are signed in with a read-only key.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// signinLimiter slows guessing: failed sign-ins share one budget per
// process (a few a second), and every failure costs its caller a pause.
type signinLimiter struct{ failures *rate.Limiter }

func newSigninLimiter() *signinLimiter {
	return &signinLimiter{failures: rate.NewLimiter(rate.Limit(2), 10)}
}

type loginData struct {
	Next    string
	Token   string
	TTL     string // how long a sign-in lasts, in words
	Problem string // why the last sign-in failed, shown beside the field
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, Base) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Base + "/"
	}
	rest := strings.TrimPrefix(next, Base)
	if rest != "" && rest[0] != '/' && rest[0] != '?' {
		return Base + "/"
	}
	if strings.HasPrefix(rest, "/login") || strings.HasPrefix(rest, "/static/") {
		return Base + "/"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s := c.sessions.get(r); s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	msg := ""
	if r.URL.Query().Get("signed_out") == "1" {
		msg = "You are signed out."
	}
	c.renderLogin(w, r, http.StatusOK, r.URL.Query().Get("next"), msg, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, flash, problem string) {
	token := randomToken()
	setCookie(w, r, loginCookie, token, c.now().Add(time.Hour))
	c.render(w, r, status, bind(loginHTML), &view{Title: "Sign in", Flash: flash,
		Data: loginData{Next: safeNext(next), Token: token, TTL: humanDuration(c.cfg.SessionTTL), Problem: problem}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, "", "", "The sign-in form could not be read. Try again.")
		return
	}
	next := r.PostFormValue("next")
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		c.renderLogin(w, r, http.StatusForbidden, next, "",
			"The sign-in form expired or your browser did not send its cookie. Allow cookies for this site and sign in again.")
		return
	}
	key := r.PostFormValue("key")
	ok, admin := false, false
	if strings.TrimSpace(key) != "" {
		ok, admin = c.cfg.Keys.Scope(key)
	}
	if !ok {
		if !c.signins.failures.Allow() {
			c.renderLogin(w, r, http.StatusTooManyRequests, next, "", "Too many failed sign-ins. Wait a minute and try again.")
			return
		}
		select { // a pause per failure, so one client cannot guess quickly
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		c.cfg.Log.Warn().Str("remote", r.RemoteAddr).Msg("console: sign-in with an unknown API key")
		msg := "That API key is not valid. Check it and try again."
		if strings.TrimSpace(key) == "" {
			msg = "Type an API key to sign in."
		}
		c.renderLogin(w, r, http.StatusUnauthorized, next, "", msg)
		return
	}
	s := c.sessions.create(key, admin)
	setCookie(w, r, sessionCookie, s.id, s.expires)
	setCookie(w, r, loginCookie, "", time.Time{})
	c.cfg.Log.Info().Str("key", s.keyID).Bool("admin", admin).Msg("console: signed in")
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	c.sessions.delete(s.id)
	setCookie(w, r, sessionCookie, "", time.Time{})
	c.cfg.Log.Info().Str("key", s.keyID).Msg("console: signed out")
	http.Redirect(w, r, Base+"/login?signed_out=1", http.StatusSeeOther)
}

// preview is a replay dry run kept so that exactly what was previewed runs.
type preview struct {
	req     ops.ReplayRequest
	expires time.Time
}

const maxPreviews = 10

func (s *session) addPreview(id string, p preview, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, old := range s.previews {
		if now.After(old.expires) {
			delete(s.previews, k)
		}
	}
	for len(s.previews) >= maxPreviews {
		var oldestID string
		for k, old := range s.previews {
			if oldestID == "" || old.expires.Before(s.previews[oldestID].expires) {
				oldestID = k
			}
		}
		delete(s.previews, oldestID)
	}
	s.previews[id] = p
}

// preview returns a kept dry run (dropPreview forgets it once it ran).
func (s *session) preview(id string, now time.Time) (ops.ReplayRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.previews[id]
	if !ok || now.After(p.expires) {
		return ops.ReplayRequest{}, false
	}
	return p.req, true
}

func (s *session) dropPreview(id string) {
	s.mu.Lock()
	delete(s.previews, id)
	s.mu.Unlock()
}
