package sim

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// WorkModules are the modules the Work API knows.
var WorkModules = []string{"cpf", "phone", "email", "nome", "cep", "cnpj", "titulo", "mae"}

// WorkAPI simulates the paid enrichment API. Errors come back with HTTP 200
// as the real one does; only a successful modulo=cpf person answer is paid
// (charged), and it is charged once served, even when its reply is then
// lost. Its rate limit is one bucket for the account (the token); a 429
// from it, like any fault answered before the handler, costs nothing.
type WorkAPI struct {
	base
	pop      *Population
	token    string
	path     string
	modules  map[string]bool
	paid     paidCounter
	errToken []byte
	errCred  []byte
}

func newWorkAPI(b base, pop *Population, token, path string, modules []string) *WorkAPI {
	wa := &WorkAPI{base: b, pop: pop, token: token, path: path, modules: map[string]bool{},
		errToken: contracts.Read("workapi/error_token.json"), errCred: contracts.Read("workapi/error_credits.json")}
	for _, m := range modules {
		wa.modules[strings.ToLower(m)] = true
	}
	wa.rec.stripToken = true
	wa.cred = func(r *http.Request) string {
		if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(wa.token)) == 1 {
			return wa.token
		}
		return ""
	}
	wa.lostCharge = wa.paid.addLost
	wa.routes()
	wa.resets = append(wa.resets, wa.paid.reset, wa.lim.Reset)
	wa.admin.HandleFunc("GET /_sim/paid", func(w http.ResponseWriter, r *http.Request) {
		if cpf := r.URL.Query().Get("cpf"); cpf != "" {
			writeJSON(w, 200, obj{{"cpf", cpf}, {"calls", wa.PaidCalls(cpf)}, {"lost", wa.LostPaidCalls(cpf)}})
			return
		}
		writeJSON(w, 200, obj{{"total", wa.TotalPaidCalls()}, {"by_cpf", wa.Paid()},
			{"lost", wa.paid.lost.Load()}, {"lost_by_cpf", wa.paid.allLost()}})
	})
	return wa
}

// PaidCalls is how many calls were charged for cpf: modulo=cpf calls that
// reached the handler and were served the person, whether or not the reply
// reached the client. Refusals (bad or expired token, out of credits, a 429,
// any fault answered before the handler) and erro answers cost nothing.
func (wa *WorkAPI) PaidCalls(cpf string) int { return wa.paid.get(cpf) }

// LostPaidCalls is how many of cpf's charged calls had their reply lost
// (lost_reply_* faults).
func (wa *WorkAPI) LostPaidCalls(cpf string) int { return wa.paid.getLost(cpf) }

// TotalPaidCalls is how many calls were charged in all.
func (wa *WorkAPI) TotalPaidCalls() int64 { return wa.paid.total.Load() }

// Paid returns charged calls per CPF.
func (wa *WorkAPI) Paid() map[string]int { return wa.paid.all() }

// ServeHTTP answers at the mount path (default /api) and at the root.
func (wa *WorkAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wa.handle(w, r, http.HandlerFunc(wa.serve))
}

func (wa *WorkAPI) serve(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != wa.path && p != wa.path+"/" && p != "/" {
		writeJSON(w, http.StatusNotFound, obj{{"status", 404}, {"statusMsg", "Not Found"}})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, obj{{"status", 405}, {"statusMsg", "Method Not Allowed"}})
		return
	}
	q := r.URL.Query()
	switch {
	case subtle.ConstantTimeCompare([]byte(q.Get("token")), []byte(wa.token)) != 1:
		markFault(w, "bad_token")
		writeRaw(w, http.StatusOK, wa.errToken)
		return
	case wa.inj.tokenExpired.Load():
		markFault(w, "token_expired")
		writeRaw(w, http.StatusOK, wa.errToken)
		return
	case wa.inj.outOfCredits.Load():
		markFault(w, "out_of_credits")
		writeRaw(w, http.StatusOK, wa.errCred)
		return
	}
	mod, v := strings.ToLower(q.Get("modulo")), strings.TrimSpace(q.Get("consulta"))
	if !wa.modules[mod] {
		writeJSON(w, http.StatusForbidden, obj{{"status", 403}, {"statusMsg", "Forbidden"},
			{"reason", "Módulo " + mod + " inexistente para a rota"}})
		return
	}
	if v == "" {
		erro(w, "Parâmetro consulta obrigatório")
		return
	}
	switch mod {
	case "cpf":
		cpf := brdata.Digits(v)
		if !brdata.ValidCPF(cpf) {
			erro(w, "CPF inválido")
			return
		}
		x := wa.pop.person(cpf)
		if x == nil {
			erro(w, "CPF não encontrado")
			return
		}
		// Counted when served: the provider charges even if the body is
		// then cut short on the way (malformed fault).
		wa.paid.add(cpf)
		if n := noteFrom(r.Context()); n != nil {
			n.charged = cpf // its reply is going to be lost
		}
		writeRaw(w, http.StatusOK, x.Raw)
	case "phone":
		wa.candidates(w, wa.pop.PhoneCandidates(brdata.NormalizePhone(v)))
	case "email":
		wa.candidates(w, wa.pop.EmailCandidates(v))
	case "nome", "mae":
		q := strings.ToUpper(v)
		if len(q) < 3 {
			erro(w, "Consulta muito curta")
			return
		}
		list := []obj{}
		for _, x := range wa.pop.search(q, mod == "mae", 50) {
			list = append(list, obj{{"cpf_cnpj", "000" + x.CPF}, {"nome", x.Name}, {"nomeMae", x.Mother}, {"dataNascimento", x.BirthDate}})
		}
		writeJSON(w, http.StatusOK, obj{{"msg", list}})
	case "cep":
		a, ok := wa.pop.cep(brdata.Digits(v))
		if !ok {
			erro(w, "CEP não encontrado")
			return
		}
		writeJSON(w, http.StatusOK, obj{{"cep", a.CEP}, {"tipoLogradouro", a.TipoLogradouro}, {"logradouro", a.Logradouro},
			{"bairro", a.Bairro}, {"cidade", a.Cidade}, {"uf", a.UF}})
	case "cnpj":
		cn := brdata.Digits(v)
		co := wa.pop.companyByCNPJ(cn)
		if co == nil {
			erro(w, "CNPJ não encontrado")
			return
		}
		socios := []obj{}
		for _, p := range co.Partners {
			socios = append(socios, obj{{"nome", p.Nome}, {"cpf_cnpj", "000" + p.CPF}, {"qualificacao", "SOCIO"}})
		}
		writeJSON(w, http.StatusOK, obj{{"cnpj", co.CNPJ}, {"razaoSocial", co.Name}, {"nomeFantasia", nil},
			{"situacaoCadastral", "ATIVA"}, {"socios", socios}})
	default: // enabled but without data here (titulo)
		erro(w, "Nenhum registro encontrado")
	}
}

// candidates answers the phone/email modules: valid CPFs only, zero-padded
// to 14 characters as the provider does.
func (wa *WorkAPI) candidates(w http.ResponseWriter, c []Candidate) {
	list := []obj{}
	for _, x := range c {
		if brdata.ValidCPF(x.CPF) {
			list = append(list, obj{{"cpf_cnpj", "000" + x.CPF}, {"nome", x.Nome}})
		}
	}
	writeJSON(w, http.StatusOK, obj{{"msg", list}})
}

func erro(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusOK, obj{{"erro", msg}})
}
