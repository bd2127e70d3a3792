package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// Candidate is one entry of a Diretrix answer.
type Candidate struct {
	Nome string `json:"nome"`
	CPF  string `json:"cpf"`
}

// Address is the part of an enderecos[] entry the cep module needs.
type Address struct {
	TipoLogradouro, Logradouro, Numero, Complemento, Bairro, Cidade, UF, CEP string
}

// Person is one synthetic (or fixture) person known to Work API and Diretrix.
type Person struct {
	CPF       string
	Name      string // upper case, as Work API and Diretrix write it
	Mother    string
	BirthDate string // DD/MM/YYYY
	// Phones and Emails are the identifiers in the Work API record (normalised:
	// DDD+number, trimmed lower-case). Diretrix knows them all, this person first.
	Phones []string
	Emails []string
	// DiretrixPhones and DiretrixEmails are identifiers only Diretrix knows.
	// A phone already known for someone else lists this person after them.
	DiretrixPhones []string
	DiretrixEmails []string
	Addresses      []Address
	Companies      []string // CNPJs
	// Raw is the exact modulo=cpf answer. AddPerson renders one when nil.
	Raw json.RawMessage
}

// LeadKind says how a generated lead relates to the population.
type LeadKind string

const (
	LeadContract  LeadKind = "contract"   // from the contract files
	LeadSame      LeadKind = "same"       // phone and email of one person
	LeadSplit     LeadKind = "split"      // phone of A, email of B
	LeadPhoneOnly LeadKind = "phone_only" // email absent or unknown
	LeadEmailOnly LeadKind = "email_only" // phone absent or unknown
	LeadNobody    LeadKind = "nobody"     // nothing Diretrix knows
	LeadCustom    LeadKind = "custom"     // added by a test
)

// Lead is one C2S lead.
type Lead struct {
	ID    string // 32 hex
	Name  string // customer name; "" = absent
	Phone string // as C2S sends it (usually with 55); "" = absent
	Email string // as C2S sends it; "" = absent
	Kind  LeadKind
	// Doc is the GET /integration/leads/{id} document (without messages).
	// AddLead renders one from the fields when nil.
	Doc json.RawMessage
}

// Expectation is what the resolution rules (RESOLUTION.md) must conclude for
// a lead given what Diretrix answers: the first valid candidate per identifier.
type Expectation struct {
	PhoneCPF string // "" = the phone leads to nobody
	EmailCPF string // "" = the email leads to nobody
}

// Persons lists the CPFs the lead resolves to, phone's person first.
func (e Expectation) Persons() []string {
	switch {
	case e.PhoneCPF == "" && e.EmailCPF == "":
		return nil
	case e.PhoneCPF == "":
		return []string{e.EmailCPF}
	case e.EmailCPF == "" || e.EmailCPF == e.PhoneCPF:
		return []string{e.PhoneCPF}
	}
	return []string{e.PhoneCPF, e.EmailCPF}
}

type company struct {
	CNPJ     string
	Name     string
	Partners []Candidate
}

// candList keeps its rendered Diretrix answer so lookups write bytes only.
type candList struct {
	c   []Candidate
	raw []byte
}

type leadEntry struct {
	Lead
	once   sync.Once
	parsed map[string]any
}

// doc returns the parsed document, shared read-only by all requests.
func (e *leadEntry) doc() map[string]any {
	e.once.Do(func() {
		_ = json.Unmarshal(e.Doc, &e.parsed)
		if e.parsed == nil {
			e.parsed = map[string]any{}
		}
	})
	return e.parsed
}

// Population is the shared world of the four simulators. It is safe for
// concurrent use; records are immutable once added, so lookups hold the lock
// only for a map access and never while encoding.
type Population struct {
	mu        sync.RWMutex
	people    []*Person
	byCPF     map[string]*Person
	phones    map[string]*candList
	emails    map[string]*candList
	leads     []*leadEntry
	byLead    map[string]*leadEntry
	companies map[string]*company
	ceps      map[string]Address
}

func newPopulation() *Population {
	return &Population{
		byCPF:     map[string]*Person{},
		phones:    map[string]*candList{},
		emails:    map[string]*candList{},
		byLead:    map[string]*leadEntry{},
		companies: map[string]*company{},
		ceps:      map[string]Address{},
	}
}

// NewPopulation builds the contract fixtures plus a deterministic synthetic
// population from cfg (only Seed, People, Leads and the rates are used).
func NewPopulation(cfg Config) *Population {
	cfg = cfg.withDefaults()
	p := newPopulation()
	p.addFixtures()
	generate(p, cfg)
	return p
}

// People returns a copy of every person, fixtures first, in creation order.
func (p *Population) People() []Person {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]Person, len(p.people))
	for i, x := range p.people {
		out[i] = *x
	}
	return out
}

// Person returns the person with that CPF.
func (p *Population) Person(cpf string) (Person, bool) {
	x := p.person(cpf)
	if x == nil {
		return Person{}, false
	}
	return *x, true
}

func (p *Population) person(cpf string) *Person {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byCPF[cpf]
}

// Leads returns a copy of every lead, contract leads first.
func (p *Population) Leads() []Lead {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]Lead, len(p.leads))
	for i, x := range p.leads {
		out[i] = x.Lead
	}
	return out
}

// Lead returns one lead.
func (p *Population) Lead(id string) (Lead, bool) {
	e := p.lead(id)
	if e == nil {
		return Lead{}, false
	}
	return e.Lead, true
}

func (p *Population) lead(id string) *leadEntry {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byLead[id]
}

// Expected says which person each of the lead's identifiers leads to, from
// Diretrix's current data. ok is false for an unknown lead.
func (p *Population) Expected(leadID string) (e Expectation, ok bool) {
	l := p.lead(leadID)
	if l == nil {
		return e, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if cl := p.phones[brdata.NormalizePhone(l.Phone)]; cl != nil && l.Phone != "" {
		e.PhoneCPF = firstValid(cl.c)
	}
	if cl := p.emails[brdata.NormalizeEmail(l.Email)]; cl != nil && l.Email != "" {
		e.EmailCPF = firstValid(cl.c)
	}
	return e, true
}

// ExpectedPersons is Expected(leadID).Persons(): phone's person first.
func (p *Population) ExpectedPersons(leadID string) []string {
	e, _ := p.Expected(leadID)
	return e.Persons()
}

func firstValid(c []Candidate) string {
	for _, x := range c {
		if brdata.ValidCPF(x.CPF) {
			return x.CPF
		}
	}
	return ""
}

// PhoneCandidates is what Diretrix answers for a normalised phone.
func (p *Population) PhoneCandidates(phone string) []Candidate {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if cl := p.phones[phone]; cl != nil {
		return append([]Candidate(nil), cl.c...)
	}
	return nil
}

// EmailCandidates is what Diretrix answers for an email.
func (p *Population) EmailCandidates(email string) []Candidate {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if cl := p.emails[brdata.NormalizeEmail(email)]; cl != nil {
		return append([]Candidate(nil), cl.c...)
	}
	return nil
}

// diretrixRaw returns the pre-rendered Diretrix answer, nil when unknown.
func (p *Population) diretrixRaw(email bool, key string) []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	idx := p.phones
	if email {
		idx = p.emails
	}
	if cl := idx[key]; cl != nil {
		return cl.raw
	}
	return nil
}

// AddPerson adds a person (Work API record and Diretrix entries). Phones and
// emails are normalised. It fails on an invalid or already known CPF.
func (p *Population) AddPerson(x Person) error {
	if !brdata.ValidCPF(x.CPF) {
		return fmt.Errorf("sim: invalid CPF %q", x.CPF)
	}
	x.Phones = normAll(x.Phones, brdata.NormalizePhone)
	x.Emails = normAll(x.Emails, brdata.NormalizeEmail)
	x.DiretrixPhones = normAll(x.DiretrixPhones, brdata.NormalizePhone)
	x.DiretrixEmails = normAll(x.DiretrixEmails, brdata.NormalizeEmail)
	if x.Raw == nil {
		x.Raw = renderMinimal(&x)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byCPF[x.CPF] != nil {
		return fmt.Errorf("sim: CPF %s already known", x.CPF)
	}
	p.addLocked(&x)
	return nil
}

func (p *Population) addLocked(x *Person) {
	p.people = append(p.people, x)
	p.byCPF[x.CPF] = x
	c := Candidate{Nome: x.Name, CPF: x.CPF}
	for _, ph := range append(x.Phones[:len(x.Phones):len(x.Phones)], x.DiretrixPhones...) {
		addCand(p.phones, ph, c, false)
	}
	for _, em := range append(x.Emails[:len(x.Emails):len(x.Emails)], x.DiretrixEmails...) {
		addCand(p.emails, em, c, false)
	}
	for _, cn := range x.Companies {
		co := p.companies[cn]
		if co == nil {
			co = &company{CNPJ: cn, Name: companyName(cn, x.Name)}
			p.companies[cn] = co
		}
		co.Partners = append(co.Partners, c)
	}
	for _, a := range x.Addresses {
		if len(a.CEP) == 8 && a.Cidade != "" {
			if _, ok := p.ceps[a.CEP]; !ok {
				p.ceps[a.CEP] = a
			}
		}
	}
}

// AddDiretrixCandidate makes Diretrix list c for a phone (DDD+number) or an
// email (anything with '@'), after the candidates it already has. c need
// not be a valid CPF: clients must skip invalid candidates.
func (p *Population) AddDiretrixCandidate(phoneOrEmail string, c Candidate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Contains(phoneOrEmail, "@") {
		addCand(p.emails, brdata.NormalizeEmail(phoneOrEmail), c, false)
	} else {
		addCand(p.phones, brdata.NormalizePhone(phoneOrEmail), c, false)
	}
}

func addCand(idx map[string]*candList, key string, c Candidate, first bool) {
	if key == "" {
		return
	}
	old := idx[key]
	var list []Candidate
	if old != nil {
		for _, x := range old.c {
			if x.CPF == c.CPF {
				return
			}
		}
		list = append(list, old.c...)
	}
	if first {
		list = append([]Candidate{c}, list...)
	} else {
		list = append(list, c)
	}
	// Copy-on-write: readers may hold the old raw slice.
	idx[key] = &candList{c: list, raw: mustJSON(list)}
}

// AddLead adds a lead. Its ID must be new; Doc is rendered when nil.
func (p *Population) AddLead(l Lead) error {
	if l.ID == "" {
		return errors.New("sim: lead without id")
	}
	if l.Kind == "" {
		l.Kind = LeadCustom
	}
	if l.Doc == nil {
		l.Doc = mustJSON(leadDoc(l, defaultLeadExtras(l.ID)))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byLead[l.ID] != nil {
		return fmt.Errorf("sim: lead %s already known", l.ID)
	}
	e := &leadEntry{Lead: l}
	p.leads = append(p.leads, e)
	p.byLead[l.ID] = e
	return nil
}

// search lists people whose name (or mother's name) contains q, at most max.
func (p *Population) search(q string, mother bool, max int) []*Person {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []*Person
	for _, x := range p.people {
		s := x.Name
		if mother {
			s = x.Mother
		}
		if s != "" && strings.Contains(s, q) {
			out = append(out, x)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

func (p *Population) companyByCNPJ(cnpj string) *company {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.companies[cnpj]
}

func (p *Population) cep(cep string) (Address, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	a, ok := p.ceps[cep]
	return a, ok
}

func normAll(in []string, f func(string) string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = f(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
