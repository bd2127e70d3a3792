package sim

import (
	"crypto/subtle"
	"net/http"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// Diretrix simulates the CPF-by-phone/email lookup.
type Diretrix struct {
	base
	pop        *Population
	user, pass string
	notFound   int // 200 ([]) or 404
	mux        *http.ServeMux
}

func newDiretrix(b base, pop *Population, user, pass string, notFound404 bool) *Diretrix {
	d := &Diretrix{base: b, pop: pop, user: user, pass: pass, notFound: http.StatusOK, mux: http.NewServeMux()}
	if notFound404 {
		d.notFound = http.StatusNotFound
	}
	d.cred = func(r *http.Request) string {
		if d.credsOK(r) {
			return d.user
		}
		return ""
	}
	d.resets = append(d.resets, d.lim.Reset)
	d.routes()
	d.mux.HandleFunc("GET /Consultas/Pessoa/Telefone/{phone}", d.auth(d.byPhone))
	d.mux.HandleFunc("GET /Consultas/Pessoa/Email/{email}", d.auth(d.byEmail))
	return d
}

func (d *Diretrix) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handle(w, r, d.mux) }

func diretrixError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func (d *Diretrix) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.credsOK(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Diretrix"`)
			diretrixError(w, http.StatusUnauthorized, "Authorization has been denied for this request.")
			return
		}
		h(w, r)
	}
}

func (d *Diretrix) credsOK(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(d.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(d.pass)) == 1
}

// byPhone matches the path exactly: clients must normalise (DDD+number), as
// the real service rarely matches anything else.
func (d *Diretrix) byPhone(w http.ResponseWriter, r *http.Request) {
	ph := r.PathValue("phone")
	if ph == "" || brdata.Digits(ph) != ph {
		diretrixError(w, http.StatusBadRequest, "Telefone inválido")
		return
	}
	d.answer(w, d.pop.diretrixRaw(false, ph))
}

// byEmail gets the path-unescaped email from the mux; case and surrounding
// blanks do not matter.
func (d *Diretrix) byEmail(w http.ResponseWriter, r *http.Request) {
	em := brdata.NormalizeEmail(r.PathValue("email"))
	if !brdata.PlausibleEmail(em) {
		diretrixError(w, http.StatusBadRequest, "E-mail inválido")
		return
	}
	d.answer(w, d.pop.diretrixRaw(true, em))
}

func (d *Diretrix) answer(w http.ResponseWriter, raw []byte) {
	if raw == nil {
		if d.notFound == http.StatusNotFound {
			diretrixError(w, http.StatusNotFound, "Nenhum registro encontrado")
			return
		}
		raw = []byte("[]")
	}
	writeRaw(w, http.StatusOK, raw)
}
