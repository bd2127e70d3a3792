// Command floor is the plainest program that does, per lead, the work the
// product does: one process, no framework. cmd/bench runs it against the same
// simulators, Postgres and embedded NATS as the product, with the same leads,
// and prints the product's speed as a share of this one.
//
// Per lead:
//   - webhook: decode, publish floor.received (acked), answer 202;
//   - resolve: Diretrix by phone and by email, publish floor.resolved;
//   - enrich: the Work API once per CPF found, one transaction (one pgx
//     Batch) writing the core.* rows of each person and the lead's
//     pipeline.lead_runs row, publish floor.enriched with the raw payloads;
//   - notify: format a message, C2S create_message, publish floor.notified.
//
// A lead whose identifiers lead nowhere gets a short message anyway, so every
// lead posts exactly one message and writes exactly one lead_runs row.
//
// It reads the product's variables (DATABASE_URL, NATS_URL, PORT, C2S_*,
// DIRETRIX_*, WORK_API_*, WEBHOOK_SECRET) plus WORKERS (handlers per stage).
// /ready answers when it is up; POST /_floor/pause and /_floor/resume hold and
// release the three stages' handlers; GET /_floor/done is how many leads
// were notified.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/store"
)

// lead is the one event body every subject carries, filled in stage by stage.
type lead struct {
	ID       string            `json:"lead_id"`
	Name     string            `json:"name,omitempty"`
	Phone    string            `json:"phone,omitempty"`
	Email    string            `json:"email,omitempty"`
	CPFs     []string          `json:"cpfs,omitempty"`
	Payloads []json.RawMessage `json:"payloads,omitempty"`
}

type floor struct {
	js     jetstream.JetStream
	db     *pgxpool.Pool
	http   *http.Client
	env    func(string) string
	done   atomic.Int64 // leads whose floor.notified was acked
	failed atomic.Int64 // handler errors (each one naked and redelivered)

	mu      sync.Mutex
	running []jetstream.ConsumeContext
	// gate, while paused, holds every handler until resume closes it. The
	// consumers keep running: a consumer stopped with a pull request still
	// open at the server could be delivered to after it stopped, and those
	// messages came back only after the ack wait (a drain of tens of leads/s,
	// once in about fifteen runs).
	gate chan struct{}
}

type stage struct {
	name, subject string
	work          func(context.Context, *lead) (next string, err error)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f := &floor{env: os.Getenv, http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute}}}
	var err error
	if f.db, err = store.Open(ctx, f.env("DATABASE_URL"), 10, false); err != nil {
		return err
	}
	defer f.db.Close()
	if err := store.Migrate(ctx, f.db); err != nil {
		return err
	}
	nc, err := nats.Connect(f.env("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Drain()
	if f.js, err = jetstream.New(nc); err != nil {
		return err
	}
	if _, err := f.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "FLOOR", Subjects: []string{"floor.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		return err
	}
	workers, _ := strconv.Atoi(f.env("WORKERS"))
	stages := []stage{
		{"resolve", "floor.received", f.resolve},
		{"enrich", "floor.resolved", f.enrich},
		{"notify", "floor.enriched", f.notify},
	}
	if err := f.start(ctx, stages, max(workers, 1)); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/webhooks/c2s", f.webhook)
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /_floor/done", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %d", f.done.Load(), f.failed.Load())
	})
	mux.HandleFunc("POST /_floor/pause", func(w http.ResponseWriter, r *http.Request) { f.pause() })
	mux.HandleFunc("POST /_floor/resume", func(w http.ResponseWriter, r *http.Request) { f.resume() })
	srv := &http.Server{Addr: "127.0.0.1:" + f.env("PORT"), Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	f.stop()
	return nil
}

// webhook publishes floor.received and answers 202 once JetStream acked it.
func (f *floor) webhook(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("token") != f.env("WEBHOOK_SECRET") {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var in struct {
		ID         string `json:"id"`
		Attributes struct {
			Customer struct{ Name, Phone, Email string } `json:"customer"`
		} `json:"attributes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ID == "" {
		http.Error(w, "bad webhook", http.StatusBadRequest)
		return
	}
	c := in.Attributes.Customer
	body, _ := json.Marshal(lead{ID: in.ID, Name: c.Name, Phone: c.Phone, Email: c.Email})
	if _, err := f.js.Publish(r.Context(), "floor.received", body, jetstream.WithMsgID("received:"+in.ID)); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"queued"}`)
}

// start runs one durable pull consumer per stage, at most workers handlers
// each. Every handler does its work, publishes the next event and waits for
// that ack, then acks its own message.
func (f *floor) start(ctx context.Context, stages []stage, workers int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range stages {
		cons, err := f.js.CreateOrUpdateConsumer(ctx, "FLOOR", jetstream.ConsumerConfig{Durable: s.name,
			FilterSubject: s.subject, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 512})
		if err != nil {
			return err
		}
		sem := make(chan struct{}, workers)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				f.wait()
				if err := f.handle(ctx, s, m); err != nil {
					f.failed.Add(1)
					fmt.Fprintf(os.Stderr, "floor: %s: %v\n", s.name, err)
					_ = m.NakWithDelay(time.Second)
					return
				}
				_ = m.Ack()
			}()
		})
		if err != nil {
			return err
		}
		f.running = append(f.running, cc)
	}
	return nil
}

func (f *floor) stop() {
	f.resume() // no handler waits forever
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cc := range f.running {
		cc.Stop()
	}
	f.running = nil
}

// pause holds the handlers of messages that arrive from now on.
func (f *floor) pause() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate == nil {
		f.gate = make(chan struct{})
	}
}

// resume releases every held handler.
func (f *floor) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
}

// wait returns at once unless the stages are paused, then on resume.
func (f *floor) wait() {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (f *floor) handle(ctx context.Context, s stage, m jetstream.Msg) error {
	var l lead
	if err := json.Unmarshal(m.Data(), &l); err != nil {
		return err
	}
	next, err := s.work(ctx, &l)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(l)
	_, err = f.js.Publish(ctx, "floor."+next, body, jetstream.WithMsgID(next+":"+l.ID))
	if err == nil && next == "notified" {
		f.done.Add(1)
	}
	return err
}

// resolve asks Diretrix for the phone's and the email's person.
func (f *floor) resolve(ctx context.Context, l *lead) (string, error) {
	var paths []string
	if ph := digits(l.Phone); ph != "" {
		if (len(ph) == 12 || len(ph) == 13) && strings.HasPrefix(ph, "55") {
			ph = ph[2:]
		}
		paths = append(paths, "/Consultas/Pessoa/Telefone/"+ph)
	}
	if em := strings.ToLower(strings.TrimSpace(l.Email)); em != "" {
		paths = append(paths, "/Consultas/Pessoa/Email/"+url.PathEscape(em))
	}
	for _, p := range paths {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.env("DIRETRIX_BASE_URL")+p, nil)
		req.SetBasicAuth(f.env("DIRETRIX_USER"), f.env("DIRETRIX_PASS"))
		var cands []struct{ CPF string }
		if err := f.call(req, &cands); err != nil {
			return "", err
		}
		for _, c := range cands {
			if validCPF(c.CPF) {
				if len(l.CPFs) == 0 || l.CPFs[0] != c.CPF {
					l.CPFs = append(l.CPFs, c.CPF)
				}
				break
			}
		}
	}
	return "resolved", nil
}

// enrich buys each person from the Work API and writes everything in one
// transaction.
func (f *floor) enrich(ctx context.Context, l *lead) (string, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, cpf := range l.CPFs {
		u := f.env("WORK_API_URL") + "?token=" + url.QueryEscape(f.env("WORK_API_KEY")) + "&modulo=cpf&consulta=" + cpf
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		var raw json.RawMessage
		if err := f.call(req, &raw); err != nil {
			return "", err
		}
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil || str(get(p, "DadosBasicos", "cpf")) == "" {
			continue // not a person (an error answer): nothing to store
		}
		l.Payloads = append(l.Payloads, raw)
		queuePerson(b, p, cpf, l.ID)
	}
	b.Queue(`INSERT INTO pipeline.lead_runs (run_id, lead_id, source, status, cpfs_processed, entities_stored)
		VALUES ($1, $2, 'floor', 'enriched', $3, $4) ON CONFLICT (run_id) DO NOTHING`,
		"floor:"+l.ID, l.ID, len(l.CPFs), len(l.Payloads))
	b.Queue("COMMIT")
	if err := f.db.SendBatch(ctx, b).Close(); err != nil {
		return "", err
	}
	return "enriched", nil
}

// queuePerson queues the inserts of one person: a new entity (its id drawn
// here), profile, this year's financials, emails, phones and addresses.
func queuePerson(b *pgx.Batch, p map[string]any, cpf, leadID string) {
	id := uuid()
	basic := func(k string) any { return null(str(get(p, "DadosBasicos", k))) }
	b.Queue(`INSERT INTO core.entities (entity_id, entity_type, national_id, name, canonical_name, is_enriched, enriched_at, data_source, metadata)
		VALUES ($1, 'person', $2, $3, upper($3), true, now(), 'api', jsonb_build_object('c2s_lead_id', $4::text))`,
		id, cpf, basic("nome"), leadID)
	var birth any
	if t, err := time.Parse("02/01/2006", str(get(p, "DadosBasicos", "dataNascimento"))); err == nil {
		birth = t
	}
	b.Queue(`INSERT INTO core.entity_profiles (entity_id, sex, birth_date, nationality, marital_status, education_level)
		VALUES ($1, left($2, 1), $3, $4, $5, $6)`, id, basic("sexo"), birth, basic("nacionalidade"), basic("estadoCivil"), basic("escolaridade"))
	var income, score any
	if v, err := strconv.ParseFloat(strings.ReplaceAll(strings.ReplaceAll(str(get(p, "DadosEconomicos", "renda")), ".", ""), ",", "."), 64); err == nil {
		income = v
	}
	if v, err := strconv.Atoi(str(get(p, "DadosEconomicos", "score", "scoreCSBA"))); err == nil {
		score = v
	}
	b.Queue(`INSERT INTO core.entity_financials (entity_id, financial_year, reported_income, credit_score, source, confidence)
		VALUES ($1, $2, $3, $4, 'api', 'high')`, id, time.Now().Year(), income, score)
	var emails, phones, types []string
	var whatsapp []bool
	for _, e := range list(p, "emails") {
		if v := strings.ToLower(str(get(e, "email"))); v != "" {
			emails = append(emails, v)
		}
	}
	for _, t := range list(p, "telefones") {
		if v := digits(str(get(t, "telefone"))); v != "" {
			phones, types = append(phones, v), append(types, str(get(t, "tipo")))
			whatsapp = append(whatsapp, str(get(t, "whatsapp")) == "SIM")
		}
	}
	if len(emails) > 0 {
		b.Queue(`INSERT INTO core.entity_emails (entity_id, email, email_type, is_primary)
			SELECT $1, e, 'personal', o = 1 FROM unnest($2::text[]) WITH ORDINALITY AS t(e, o)`, id, emails)
	}
	if len(phones) > 0 {
		b.Queue(`INSERT INTO core.entity_phones (entity_id, phone, phone_type, is_primary, is_whatsapp)
			SELECT $1, ph, ty, o = 1, wa FROM unnest($2::text[], $3::text[], $4::bool[]) WITH ORDINALITY AS t(ph, ty, wa, o)
			ON CONFLICT DO NOTHING`, id, phones, types, whatsapp)
	}
	var cols [8][]string
	for _, a := range list(p, "enderecos") {
		for i, k := range []string{"tipoLogradouro", "logradouro", "logradouroNumero", "complemento", "bairro", "cidade", "uf", "cep"} {
			cols[i] = append(cols[i], str(get(a, k)))
		}
	}
	if len(cols[0]) == 0 {
		return
	}
	b.Queue(`WITH a AS (
			INSERT INTO core.addresses (street_type, street, number, complement, neighborhood, city, state, zip_code)
			SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
			RETURNING id)
		INSERT INTO core.entity_addresses (entity_id, address_id, address_type, is_current, data_source)
		SELECT $1, id, 'residential', true, 'api' FROM a`,
		id, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7])
}

// notify posts one message on the lead in C2S.
func (f *floor) notify(ctx context.Context, l *lead) (string, error) {
	var msg strings.Builder
	if len(l.Payloads) == 0 {
		msg.WriteString("Nenhum dado encontrado para o telefone e o e-mail deste lead.\n")
	}
	for _, raw := range l.Payloads {
		var p map[string]any
		_ = json.Unmarshal(raw, &p)
		fmt.Fprintf(&msg, "✅ DADOS PESSOAIS\nNome: %s\nCPF: %s\nData Nascimento: %s\nMãe: %s\n\n💰 DADOS FINANCEIROS\nRenda: R$ %s\nScore de Crédito: %s\n",
			str(get(p, "DadosBasicos", "nome")), str(get(p, "DadosBasicos", "cpf")), str(get(p, "DadosBasicos", "dataNascimento")),
			str(get(p, "DadosBasicos", "nomeMae")), str(get(p, "DadosEconomicos", "renda")), str(get(p, "DadosEconomicos", "score", "scoreCSBA")))
		for _, k := range [][3]string{{"📧 EMAILS", "emails", "email"}, {"📱 TELEFONES", "telefones", "telefone"}} {
			fmt.Fprintf(&msg, "\n%s\n", k[0])
			for i, x := range list(p, k[1]) {
				fmt.Fprintf(&msg, "%d. %s\n", i+1, str(get(x, k[2])))
			}
		}
		msg.WriteString("\n🏠 ENDEREÇOS\n")
		for i, a := range list(p, "enderecos") {
			fmt.Fprintf(&msg, "%d. %s %s, %s - %s/%s - CEP: %s\n", i+1, str(get(a, "logradouro")), str(get(a, "logradouroNumero")),
				str(get(a, "bairro")), str(get(a, "cidade")), str(get(a, "uf")), str(get(a, "cep")))
		}
	}
	body, _ := json.Marshal(map[string]string{"leadId": l.ID, "body": msg.String()})
	req, _ := http.NewRequestWithContext(ctx, "POST", f.env("C2S_BASE_URL")+"/integration/leads/"+url.PathEscape(l.ID)+"/create_message", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.env("C2S_TOKEN"))
	if err := f.call(req, nil); err != nil {
		return "", err
	}
	l.Payloads = nil // the notified event carries no personal data
	return "notified", nil
}

// call does one HTTP request; a non-2xx answer is an error, a 2xx body is
// decoded into out when out is not nil.
func (f *floor) call(req *http.Request, out any) error {
	resp, err := f.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// get walks nested JSON objects; anything missing is nil.
func get(v any, path ...string) any {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func list(v any, k string) []any { l, _ := get(v, k).([]any); return l }

// str renders a JSON leaf as text (numbers too); null and objects are "".
func str(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

func validCPF(c string) bool {
	if len(c) != 11 || digits(c) != c || strings.Count(c, c[:1]) == 11 {
		return false
	}
	for n := 9; n <= 10; n++ {
		sum := 0
		for i := 0; i < n; i++ {
			sum += int(c[i]-'0') * (n + 1 - i)
		}
		if d := sum * 10 % 11 % 10; d != int(c[n]-'0') {
			return false
		}
	}
	return true
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
