package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// The generator draws everything from one seeded PCG in a fixed order, so a
// seed always yields the same people and leads.

var (
	femaleNames = []string{"ANA", "MARIA", "JULIANA", "FERNANDA", "PATRICIA", "CAMILA", "BEATRIZ", "LARISSA", "GABRIELA", "LUCIANA", "ADRIANA", "RENATA", "MARCIA", "VANESSA", "BRUNA", "CAROLINA", "LETICIA", "AMANDA", "SIMONE", "CLAUDIA", "TATIANE", "ALINE", "DEBORA", "RAQUEL", "SANDRA", "ELAINE", "MARIANA", "ISABELA", "LUANA", "PRISCILA"}
	maleNames   = []string{"JOSE", "JOAO", "ANTONIO", "FRANCISCO", "CARLOS", "PAULO", "PEDRO", "LUCAS", "LUIZ", "MARCOS", "GABRIEL", "RAFAEL", "DANIEL", "MARCELO", "BRUNO", "EDUARDO", "FELIPE", "RODRIGO", "GUSTAVO", "FABIO", "ANDRE", "THIAGO", "LEONARDO", "RICARDO", "MATEUS", "VINICIUS", "SERGIO", "ROBERTO", "DIEGO", "HENRIQUE"}
	surnames    = []string{"SILVA", "SANTOS", "OLIVEIRA", "SOUZA", "RODRIGUES", "FERREIRA", "ALVES", "PEREIRA", "LIMA", "GOMES", "COSTA", "RIBEIRO", "MARTINS", "CARVALHO", "ALMEIDA", "LOPES", "SOARES", "FERNANDES", "VIEIRA", "BARBOSA", "ROCHA", "DIAS", "NASCIMENTO", "ANDRADE", "MOREIRA", "NUNES", "MARQUES", "MACHADO", "MENDES", "FREITAS", "CARDOSO", "RAMOS", "GONCALVES", "SANTANA", "TEIXEIRA", "ARAUJO", "PINTO", "CORREIA", "MONTEIRO", "BATISTA", "CAMPOS", "REIS", "MOURA", "CAVALCANTI", "BEZERRA", "PRADO", "LINS", "DUARTE", "MIRANDA", "FONSECA"}
	streets     = []string{"DAS FLORES", "SETE DE SETEMBRO", "XV DE NOVEMBRO", "DOS ANDRADAS", "BRASIL", "PAULISTA", "DAS AMERICAS", "SAO JOAO", "TIRADENTES", "DOM PEDRO II", "DAS PALMEIRAS", "DOS IPES", "SANTOS DUMONT", "GETULIO VARGAS", "DOS BANDEIRANTES", "RIO BRANCO", "DAS ACACIAS", "BOA VISTA"}
	bairros     = []string{"CENTRO", "JARDIM AMERICA", "VILA NOVA", "BELA VISTA", "SANTA CECILIA", "JARDIM PAULISTA", "BOA VIAGEM", "COPACABANA", "SAVASSI", "BATEL", "MOINHOS DE VENTO", "ASA SUL", "ALDEOTA", "PITUBA", "VILA MARIANA", "TIJUCA"}
	streetTypes = []string{"R", "R", "R", "AV", "AV", "TV", "AL", "PC", "EST"}
	operadoras  = []string{"VIVO", "CLARO", "TIM", "OI"}
	emailDomain = []string{"example.com", "example.net", "example.org"}
	cores       = []string{"BRANCA", "PARDA", "PRETA", "AMARELA", "INDIGENA"}
	escolas     = []string{"ENSINO FUNDAMENTAL COMPLETO", "ENSINO MEDIO COMPLETO", "ENSINO MEDIO INCOMPLETO", "ENSINO SUPERIOR COMPLETO", "ENSINO SUPERIOR INCOMPLETO", "POS-GRADUACAO"}
	civis       = []string{"SOLTEIRO(A)", "CASADO(A)", "DIVORCIADO(A)", "VIUVO(A)", "UNIAO ESTAVEL"}
	profissoes  = [][2]string{{"252105", "ADMINISTRADOR"}, {"223505", "ENFERMEIRO"}, {"212405", "ANALISTA DE SISTEMAS"}, {"411005", "AUXILIAR DE ESCRITORIO"}, {"521110", "VENDEDOR DE COMERCIO VAREJISTA"}, {"231205", "PROFESSOR"}, {"782510", "MOTORISTA"}}
	products    = []string{"Apartamento 2 dormitórios - Centro", "Casa 3 dormitórios - Jardim América", "Studio - Vila Mariana", "Cobertura duplex - Bela Vista", "Terreno 360m² - Condomínio", "Sala comercial - Centro"}
	sources     = [][2]any{{101, "Site"}, {102, "Portal Imobiliário"}, {103, "Facebook"}, {104, "Instagram"}, {105, "Indicação"}}
)

type city struct {
	name, uf, ddd string
	cep           int // first 2 digits
}

var cities = []city{
	{"SAO PAULO", "SP", "11", 1}, {"SAO PAULO", "SP", "11", 4}, {"CAMPINAS", "SP", "19", 13}, {"SANTOS", "SP", "13", 11},
	{"SOROCABA", "SP", "15", 18}, {"RIO DE JANEIRO", "RJ", "21", 20}, {"NITEROI", "RJ", "21", 24}, {"BELO HORIZONTE", "MG", "31", 30},
	{"CURITIBA", "PR", "41", 80}, {"PORTO ALEGRE", "RS", "51", 90}, {"SALVADOR", "BA", "71", 40}, {"RECIFE", "PE", "81", 50},
	{"FORTALEZA", "CE", "85", 60}, {"BRASILIA", "DF", "61", 70}, {"GOIANIA", "GO", "62", 74}, {"FLORIANOPOLIS", "SC", "48", 88},
	{"VITORIA", "ES", "27", 29}, {"MANAUS", "AM", "92", 69},
}

// Purchasing-power bands (reais), loosely after the real provider's table.
var bands = []struct {
	code, desc, faixa string
	lo, hi            int
}{
	{"1", "MUITO BAIXO", "01", 0, 1100}, {"2", "BAIXO", "02", 1100, 1630}, {"3", "MEDIO BAIXO", "03", 1630, 4082},
	{"4", "MEDIO", "04", 4082, 6125}, {"5", "MEDIO", "05", 6125, 8168}, {"6", "MEDIO ALTO", "07", 8168, 12252},
	{"7", "ALTO", "08", 12252, 18378}, {"8", "ALTO", "09", 18378, 27567}, {"9", "MUITO ALTO", "10", 27567, 41350},
	{"10", "MUITO ALTO", "11", 41350, 0},
}

type gen struct {
	r   *rand.Rand
	p   *Population
	cfg Config
}

func generate(p *Population, cfg Config) {
	g := &gen{r: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x1ead_f10e)), p: p, cfg: cfg}
	cfg.SplitRate, cfg.NobodyRate = max(cfg.SplitRate, 0), max(cfg.NobodyRate, 0)
	cfg.PartialRate, cfg.InvalidCandidateRate = max(cfg.PartialRate, 0), max(cfg.InvalidCandidateRate, 0)
	g.cfg = cfg
	p.mu.Lock()
	for range max(cfg.People, 0) {
		g.person()
	}
	p.mu.Unlock()
	for range max(cfg.Leads, 0) {
		g.lead()
	}
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }
func (g *gen) chance(p float64) bool  { return g.r.Float64() < p }

// gap returns v most of the time, otherwise one of the shapes real payloads
// carry instead: the key absent (nil), null or an empty string.
func (g *gen) gap(p float64, v any) any {
	if !g.chance(p) {
		return v
	}
	switch g.r.IntN(3) {
	case 0:
		return nil
	case 1:
		return null
	}
	return ""
}

// add appends k unless v is nil (the absent shape of gap).
func add(o *obj, k string, v any) {
	if v != nil {
		*o = append(*o, field{k, v})
	}
}

func (g *gen) cpf() string {
	for {
		base := fmt.Sprintf("%09d", g.r.IntN(1_000_000_000))
		d1, d2 := brdata.CPFCheckDigits(base)
		c := base + string([]byte{d1, d2})
		if brdata.ValidCPF(c) && g.p.byCPF[c] == nil {
			return c
		}
	}
}

func (g *gen) cnpj() string {
	base := fmt.Sprintf("%08d0001", g.r.IntN(100_000_000))
	return base + cnpjCheckDigits(base)
}

func (g *gen) phoneNumber(ddd string, mobile bool) string {
	if mobile {
		return ddd + "9" + strconv.Itoa(6+g.r.IntN(4)) + fmt.Sprintf("%07d", g.r.IntN(10_000_000))
	}
	return ddd + strconv.Itoa(2+g.r.IntN(4)) + fmt.Sprintf("%07d", g.r.IntN(10_000_000))
}

// freshPhone is a phone nobody in the population has yet.
func (g *gen) freshPhone(ddd string, mobile bool) string {
	for {
		if ph := g.phoneNumber(ddd, mobile); g.p.phones[ph] == nil {
			return ph
		}
	}
}

func (g *gen) freshEmail(first, last string) string {
	first, last = strings.ToLower(first), strings.ToLower(last)
	for i := 0; ; i++ {
		var local string
		switch g.r.IntN(5) {
		case 0:
			local = first + "." + last
		case 1:
			local = first + last
		case 2:
			local = first[:1] + "." + last
		case 3:
			local = first + "_" + last
		default:
			local = last + "." + first
		}
		if i > 0 || g.chance(0.4) {
			local += strconv.Itoa(g.r.IntN(1000))
		}
		e := local + "@" + g.pick(emailDomain)
		if g.p.emails[e] == nil {
			return e
		}
	}
}

// brMoney writes cents as pt-BR text: "8500,50" or, with dots, "8.500,50".
func brMoney(cents int64, dots bool) string {
	s := strconv.FormatInt(cents/100, 10)
	if dots {
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte('.')
			}
			b.WriteRune(c)
		}
		s = b.String()
	}
	return fmt.Sprintf("%s,%02d", s, cents%100)
}

func thousands(n int, dots bool) string {
	s := brMoney(int64(n)*100, dots)
	return s[:len(s)-3]
}

func (g *gen) date(y0, y1 int) string {
	return fmt.Sprintf("%02d/%02d/%04d", 1+g.r.IntN(28), 1+g.r.IntN(12), y0+g.r.IntN(y1-y0+1))
}

// person generates one person and adds it (p.mu held).
func (g *gen) person() {
	sparse := g.chance(0.15) // a thin record, like cpf_sparse.json
	gp := 0.03
	if sparse {
		gp = 0.35
	}
	female := g.chance(0.5)
	first := g.pick(maleNames)
	sexo := "M - MASCULINO"
	if female {
		first, sexo = g.pick(femaleNames), "F - FEMININO"
	}
	last := g.pick(surnames)
	name := first + " " + last
	if g.chance(0.6) {
		name = first + " " + g.pick(surnames) + " " + last
	}
	x := &Person{CPF: g.cpf(), Name: name, BirthDate: g.date(1945, 2004)}
	mother := g.pick(femaleNames) + " " + g.pick(surnames) + " " + last
	motherV := g.gap(gp, mother)
	if motherV == any(mother) {
		x.Mother = mother
	}
	home := cities[g.r.IntN(len(cities))]

	basic := obj{{"nome", name}, {"cpf", x.CPF}}
	add(&basic, "dataNascimento", g.gap(gp/3, x.BirthDate))
	add(&basic, "sexo", g.gap(gp, sexo))
	add(&basic, "cor", g.gap(gp*2, g.pick(cores)))
	add(&basic, "nomeMae", motherV)
	father := "SEM INFORMAÇÃO"
	if g.chance(0.6) {
		father = g.pick(maleNames) + " " + last
	}
	add(&basic, "nomePai", g.gap(gp, father))
	add(&basic, "municipioNascimento", g.gap(gp*2, home.name))
	add(&basic, "escolaridade", g.gap(gp*2, g.pick(escolas)))
	add(&basic, "estadoCivil", g.gap(gp, g.pick(civis)))
	add(&basic, "nacionalidade", g.gap(gp, "BRASILEIRA"))
	if g.chance(0.3) {
		basic = append(basic, field{"cns", fmt.Sprintf("7%014d", g.r.Int64N(1e14))})
	}
	if !sparse {
		basic = append(basic,
			field{"conjuge", []any{}},
			field{"obito", obj{{"obito", "NÃO"}, {"dataObito", "Não consta."}}},
			field{"situacaoCadastral", obj{{"codigoSituacaoCadastral", "0"}, {"descricaoSituacaoCadastral", "REGULAR"}, {"dataSituacaoCadastral", fmt.Sprintf("%04d-%02d-%02d 00:00:00", 2010+g.r.IntN(14), 1+g.r.IntN(12), 1+g.r.IntN(28))}}})
	}

	rec := obj{{"status", 200}}
	if !sparse {
		rec = append(rec, field{"foto", obj{{"foto", null}, {"assinatura", null}, {"caracteristicas", []any{}}}})
	}
	rec = append(rec, field{"DadosBasicos", basic})
	rec = append(rec, field{"DadosEconomicos", g.economics(gp, sparse)})
	if !sparse {
		pr := profissoes[g.r.IntN(len(profissoes))]
		rec = append(rec, field{"profissao", obj{{"cbo", pr[0]}, {"cboDescricao", pr[1]}, {"pis", 0}}}, field{"empregos", []any{}})
	}
	rec = append(rec, field{"empresas", g.companies(x)})
	rec = append(rec, field{"enderecos", g.addresses(x, home, gp)})
	rec = append(rec, field{"telefones", g.phones(x, home, gp, sparse)})
	rec = append(rec, field{"emails", g.emails(x, first, last, gp, sparse)})
	if !sparse {
		rec = append(rec,
			field{"parentes", []obj{{{"nomeParente", mother}, {"cpfParente", g.cpf()}, {"grauParentesco", "MAE"}}}},
			field{"DadosImposto", []any{}}, field{"beneficios", []any{}}, field{"pep", []any{}},
			field{"vizinhos", []any{}}, field{"comprasId", []any{}},
			field{"flags", obj{{"__pessoa_exposta_politicamente__", false}, {"__beneficiario_auxilios__", g.chance(0.1)}, {"__servidor_publico_siape__", g.chance(0.05)}}})
	}
	x.Raw = mustJSON(rec)
	g.p.addLocked(x)

	// Some Diretrix answers list a candidate with a broken CPF first; clients
	// must skip it (diretrix/API.md).
	if len(x.Phones) > 0 && g.chance(g.cfg.InvalidCandidateRate) {
		bad := x.CPF[:10] + strconv.Itoa((int(x.CPF[10]-'0')+1)%10)
		if g.chance(0.5) {
			bad = x.CPF[:9]
		}
		addCand(g.p.phones, x.Phones[0], Candidate{Nome: x.Name, CPF: bad}, true)
	}
}

func (g *gen) economics(gp float64, sparse bool) obj {
	reais := int(math.Exp(7.2 + g.r.Float64()*3.4)) // ~1.300 to ~40.000
	cents := int64(reais)*100 + int64(g.r.IntN(100))
	dots := g.chance(0.5)
	renda := brMoney(cents, dots)
	var rendaV any = g.gap(gp, renda)
	if g.chance(0.02) {
		rendaV = float64(cents) / 100 // a number where text was expected
	}
	b := bands[len(bands)-1]
	for _, x := range bands {
		if reais < x.hi {
			b = x
			break
		}
	}
	faixa := "Acima de R$ " + thousands(b.lo, dots)
	if b.hi > 0 {
		faixa = "De R$ " + thousands(b.lo, dots) + " até R$ " + thousands(b.hi, dots)
	}
	eco := obj{}
	add(&eco, "renda", rendaV)
	add(&eco, "poderAquisitivo", g.gap(gp/2, obj{{"codigoPoderAquisitivo", b.code}, {"poderAquisitivoDescricao", b.desc},
		{"rendaPoderAquisitivo", renda}, {"codigoFaixaRenda", b.faixa}, {"faixaPoderAquisitivo", faixa}}))
	sc := g.r.IntN(1001)
	risk, short := "ALTO RISCO", "ALTO"
	if sc >= 700 {
		risk, short = "BAIXO RISCO", "BAIXO"
	} else if sc >= 400 {
		risk, short = "MEDIO RISCO", "MEDIO"
	}
	var scV any = g.gap(gp, strconv.Itoa(sc))
	if g.chance(0.03) {
		scV = sc // a number where text was expected
	}
	score := obj{}
	if !sparse {
		score = append(score, field{"scoreCSB", strconv.Itoa(max(0, sc-g.r.IntN(60)))}, field{"scoreCSBFaixaRisco", short})
	}
	if scV == nil {
		scV = null
	}
	score = append(score, field{"scoreCSBA", scV}, field{"scoreCSBAFaixaRisco", g.gap(gp, risk)})
	if score[len(score)-1].v == nil {
		score = score[:len(score)-1]
	}
	eco = append(eco, field{"score", score})
	if !sparse && g.chance(0.7) {
		eco = append(eco, field{"serasaMosaic", obj{{"codigoMosaic", fmt.Sprintf("%c%02d", 'A'+g.r.IntN(11), 1+g.r.IntN(40))},
			{"descricaoMosaic", "Segmento sintético"}, {"classeMosaic", "Classe " + string(rune('A'+g.r.IntN(5)))}}})
	}
	return eco
}

func (g *gen) companies(x *Person) []obj {
	out := []obj{}
	if !g.chance(0.3) {
		return out
	}
	for range 1 + g.r.IntN(3) {
		cn := g.cnpj()
		x.Companies = append(x.Companies, cn)
		e := obj{{"cnpj", cn}}
		if g.chance(0.7) {
			e = append(e, field{"tipoRelacao", "QSA"})
			add(&e, "relacao", g.gap(0.2, []string{"SOCIO", "SOCIO-ADMINISTRADOR", "ADMINISTRADOR"}[g.r.IntN(3)]))
		} else {
			e = append(e, field{"tipoRelacao", "REPRESENTANTELEGAL"}, field{"relacao", ""})
		}
		e = append(e, field{"admissao", g.date(1995, 2024)}, field{"demissao", ""})
		out = append(out, e)
	}
	return out
}

func (g *gen) addresses(x *Person, home city, gp float64) []obj {
	out := []obj{}
	n := 1 + g.r.IntN(3)
	if g.chance(0.05) {
		n = 0
	}
	for i := range n {
		c := home
		if i > 0 {
			c = cities[g.r.IntN(len(cities))]
		}
		a := Address{TipoLogradouro: g.pick(streetTypes), Logradouro: g.pick(streets), Numero: strconv.Itoa(1 + g.r.IntN(3000)),
			Bairro: g.pick(bairros), Cidade: c.name, UF: c.uf, CEP: fmt.Sprintf("%02d%03d%03d", c.cep, g.r.IntN(1000), g.r.IntN(1000))}
		if g.chance(0.3) {
			a.Complemento = fmt.Sprintf("AP %d", 1+g.r.IntN(200))
		}
		e := obj{{"tipoLogradouro", a.TipoLogradouro}}
		if g.chance(gp) { // an address with the parts blanked, as providers send
			e = append(e, field{"logradouro", ""}, field{"logradouroNumero", ""}, field{"bairro", ""}, field{"cidade", ""}, field{"uf", ""}, field{"cep", ""})
			out = append(out, e)
			continue
		}
		var num any = g.gap(gp, a.Numero)
		if g.chance(0.02) {
			num, _ = strconv.Atoi(a.Numero) // a number where text was expected
		}
		e = append(e, field{"logradouro", a.Logradouro})
		add(&e, "logradouroNumero", num)
		add(&e, "complemento", g.gap(gp, a.Complemento))
		add(&e, "bairro", g.gap(gp, a.Bairro))
		e = append(e, field{"cidade", a.Cidade}, field{"uf", a.UF}, field{"cep", a.CEP})
		x.Addresses = append(x.Addresses, a)
		out = append(out, e)
	}
	return out
}

func (g *gen) phones(x *Person, home city, gp float64, sparse bool) []obj {
	out := []obj{}
	n := 1 + g.r.IntN(4)
	if g.chance(0.04) {
		n = 0
	}
	if sparse && g.chance(0.3) { // an entry without a number, as in cpf_sparse.json
		out = append(out, obj{{"telefone", ""}, {"tipo", "TELEFONE MÓVEL"}, {"whatsapp", "SIM"}})
	}
	for i := range n {
		mobile := g.chance(0.75)
		if i == 0 {
			mobile = g.chance(0.9)
		}
		ddd := home.ddd
		if g.chance(0.1) {
			ddd = g.pick([]string{"11", "21", "31", "41", "51", "61", "71", "81"})
		}
		ph := g.freshPhone(ddd, mobile)
		x.Phones = append(x.Phones, ph)
		tipo := g.pick([]string{"TELEFONE RESIDENCIAL", "COMERCIAL"})
		wa := any(null)
		if mobile {
			tipo = g.pick([]string{"TELEFONE MÓVEL", "TELEFONE MÓVEL", "CELULAR"})
			wa = g.pick([]string{"SIM", "SIM", "NAO"})
		}
		e := obj{{"telefone", ph}}
		add(&e, "status", g.gap(gp, g.pick([]string{"ATIVO", "ATIVO", "ATIVO", "NO"})))
		add(&e, "tipo", g.gap(gp, tipo))
		add(&e, "operadora", g.gap(gp, g.pick(operadoras)))
		e = append(e, field{"whatsapp", wa})
		out = append(out, e)
	}
	return out
}

func (g *gen) emails(x *Person, first, last string, gp float64, sparse bool) []obj {
	out := []obj{}
	n := 1 + g.r.IntN(3)
	if g.chance(0.08) || (sparse && g.chance(0.4)) {
		n = 0
	}
	prios := []string{"MUITO ALTA", "ALTA", "MEDIA", "BAIXA"}
	for i := range n {
		em := g.freshEmail(first, last)
		x.Emails = append(x.Emails, em)
		e := obj{{"email", em}}
		add(&e, "prioridade", g.gap(gp+0.1, prios[min(i, 3)]))
		add(&e, "qualidade", g.gap(gp, g.pick([]string{"OTIMO", "BOM", "POTENCIALMENTE BOM", "RUIM"})))
		add(&e, "emailPessoal", g.gap(gp, g.pick([]string{"SIM", "NAO"})))
		e = append(e, field{"blacklist", "NÃO"})
		out = append(out, e)
	}
	return out
}

// lead generates one lead of a kind drawn from the configured mix.
func (g *gen) lead() {
	c := g.cfg
	people := g.p.people[2:] // generated people only: fixtures stay contract-exact
	if len(people) < 2 {
		return
	}
	withPhone := func() *Person {
		for {
			if x := people[g.r.IntN(len(people))]; len(x.Phones) > 0 {
				return x
			}
		}
	}
	withEmail := func(not *Person) *Person {
		for {
			if x := people[g.r.IntN(len(people))]; len(x.Emails) > 0 && x != not {
				return x
			}
		}
	}
	withBoth := func() *Person {
		for {
			if x := withPhone(); len(x.Emails) > 0 {
				return x
			}
		}
	}
	l := Lead{ID: fmt.Sprintf("%016x%016x", g.r.Uint64(), g.r.Uint64())}
	var who *Person
	unknownPhone := func() string { return g.freshPhone(g.pick([]string{"11", "21", "31", "41"}), true) }
	unknownEmail := func() string { return g.freshEmail(g.pick(femaleNames), g.pick(surnames)) }
	u := g.r.Float64()
	switch {
	case u < c.NobodyRate:
		l.Kind = LeadNobody
		l.Phone, l.Email = unknownPhone(), unknownEmail()
		if g.chance(0.2) {
			l.Email = ""
		}
		who = people[g.r.IntN(len(people))] // only lends a name
	case u < c.NobodyRate+c.SplitRate:
		l.Kind = LeadSplit
		who = withPhone()
		l.Phone, l.Email = who.Phones[0], withEmail(who).Emails[0]
	case u < c.NobodyRate+c.SplitRate+c.PartialRate/2:
		l.Kind = LeadPhoneOnly
		who = withPhone()
		l.Phone = who.Phones[0]
		if g.chance(0.5) {
			l.Email = unknownEmail()
		}
	case u < c.NobodyRate+c.SplitRate+c.PartialRate:
		l.Kind = LeadEmailOnly
		who = withEmail(nil)
		l.Email = who.Emails[0]
		if g.chance(0.5) {
			l.Phone = unknownPhone()
		}
	default:
		l.Kind = LeadSame
		who = withBoth()
		l.Phone, l.Email = who.Phones[0], who.Emails[0]
	}
	l.Phone = g.formatPhone(l.Phone)
	if l.Email != "" && g.chance(0.05) {
		l.Email = " " + strings.ToUpper(l.Email[:1]) + l.Email[1:] + " " // normalisation is the client's job
	}
	parts := strings.Fields(who.Name)
	l.Name = titleCase(parts[0] + " " + parts[len(parts)-1])
	if g.chance(0.03) {
		l.Name = ""
	}

	ex := defaultLeadExtras(l.ID)
	created := time.Date(2025, 11, 1, 9, 0, 0, 0, time.FixedZone("", -3*3600)).Add(time.Duration(g.r.IntN(60*24*30)) * time.Minute)
	ex.created = created.Format("2006-01-02T15:04:05.000-07:00")
	ex.updated = created.Add(time.Duration(1+g.r.IntN(600)) * time.Second).Format("2006-01-02T15:04:05.000-07:00")
	src := sources[g.r.IntN(len(sources))]
	ex.source = obj{{"id", src[0]}, {"name", src[1]}}
	ex.description = g.pick([]string{"Olá, tenho interesse. Podem me ligar?", "Gostaria de agendar uma visita.", "Qual o valor do condomínio?", ""})
	if g.chance(0.8) {
		ex.product = obj{{"id", fmt.Sprintf("%032x", g.r.Uint64())}, {"description", g.pick(products)},
			{"prop_ref", fmt.Sprintf("AP-%04d", g.r.IntN(10000))}, {"price", fmt.Sprintf("%d.0", (200+g.r.IntN(2800))*1000)}}
	}
	switch g.r.IntN(3) { // how C2S shows a field the customer left blank
	case 0:
		ex.absent = nil
	case 1:
		ex.absent = null
	default:
		ex.absent = ""
	}
	l.Doc = mustJSON(leadDoc(l, ex))
	must(g.p.AddLead(l))
}

// formatPhone writes a DDD+number the ways C2S customers type it.
func (g *gen) formatPhone(ph string) string {
	if ph == "" {
		return ""
	}
	switch u := g.r.IntN(10); {
	case u < 7:
		return "55" + ph
	case u < 8:
		return ph
	case u < 9 && len(ph) == 11:
		return fmt.Sprintf("+55 (%s) %s-%s", ph[:2], ph[2:7], ph[7:])
	default:
		return fmt.Sprintf("(%s) %s-%s", ph[:2], ph[2:len(ph)-4], ph[len(ph)-4:])
	}
}

func titleCase(s string) string {
	w := strings.Fields(strings.ToLower(s))
	for i, x := range w {
		w[i] = strings.ToUpper(x[:1]) + x[1:]
	}
	return strings.Join(w, " ")
}
