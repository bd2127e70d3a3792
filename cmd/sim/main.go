// Command sim runs the four upstream simulators (C2S, C2S gateway, Diretrix,
// Work API) for local runs. Flags default to SIM_* environment variables. It
// prints the product's environment for them and exits 0 on SIGTERM/SIGINT.
// Faults (including lost replies), rate limits and the hidden-messages mode
// can be set at start-up here and changed at run time under /_sim/ (see -h).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/leadflow/leadflow/pkg/buildinfo"
	"github.com/leadflow/leadflow/pkg/sim"
)

func env(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return n
	}
	return def
}

const usageTail = `
Faults (-faults / SIM_FAULTS, and at run time GET/PUT/PATCH/DELETE /_sim/faults
on each simulator; PATCH merges) are JSON per upstream ("c2s", "gateway",
"diretrix", "workapi") with these keys:
  latency_min, latency_max  "150ms" or milliseconds
  error_rate, error_status  share answered error_status (default 500)
  hang_rate                 share held without an answer until the client gives up
  burst_429, retry_after    the next N requests get 429 with Retry-After
  malformed_rate            share of bodies cut in half
  down, down_status         drop every connection, or answer down_status (e.g. 503;
                            on the gateway nothing is forwarded to C2S)
  token_expired, out_of_credits   Work API error bodies (HTTP 200); switch on and
                            off at run time for an outage window
  lost_reply_502_rate       share handled in full (message posted, person paid),
                            then answered 502 (gateway {"detail":...}, others plain text)
  lost_reply_hang_rate      share handled in full, then held until the client gives up
  lost_reply_drop_rate      share handled in full, then the connection is closed
  lead_messages_hidden      (c2s, gateway) lead documents carry no messages list
e.g. -faults '{"gateway":{"lost_reply_502_rate":0.1},"c2s":{"lead_messages_hidden":true}}'

Rate limits are token buckets per credential, "RATE[/PER][,burst=N]" such as
"10/1m,burst=10" or "0.5/s"; PER is a Go duration or s, m, h (default 1s),
burst defaults to 1. The C2S bucket is per C2S token and shared by direct calls
and the gateway (which forwards with that token). An empty bucket answers 429
with Retry-After in whole seconds and has no effect (nothing posted or paid).
At run time: GET/PUT/PATCH/DELETE /_sim/limits, e.g. {"rate":10,"per":"1m","burst":10}
(the gateway's is the shared C2S bucket). GET also shows per credential the
requests admitted and rejected and the most admitted in any window of the
period (?window=1m to choose it; ?times=1 adds the admission times).

Admin endpoints on each simulator: /_sim/faults, /_sim/limits, /_sim/stats
(requests, lost_replies, rate_limited), /_sim/requests?limit=N, POST /_sim/reset;
C2S and gateway add /_sim/messages?lead=, C2S /_sim/subscriptions and /_sim/leads;
the Work API adds /_sim/paid?cpf= (charged calls, and those whose reply was lost).
`

func limitFlag(p *sim.Limit, name, envKey, what string) {
	def := env(envKey, "")
	if def != "" {
		l, err := sim.ParseLimit(def)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sim: %s: %v\n", envKey, err)
			os.Exit(2)
		}
		*p = l
	}
	flag.Func(name, what+` rate limit, e.g. "10/1m,burst=10" (`+envKey+`)`, func(v string) error {
		l, err := sim.ParseLimit(v)
		if err == nil {
			*p = l
		}
		return err
	})
}

func main() {
	var cfg sim.Config
	var addrs sim.Addrs
	var faults string
	flag.StringVar(&addrs.C2S, "c2s-addr", env("SIM_C2S_ADDR", ":8081"), "C2S listen address (SIM_C2S_ADDR)")
	flag.StringVar(&addrs.Gateway, "gateway-addr", env("SIM_GATEWAY_ADDR", ":8082"), "gateway listen address (SIM_GATEWAY_ADDR)")
	flag.StringVar(&addrs.Diretrix, "diretrix-addr", env("SIM_DIRETRIX_ADDR", ":8083"), "Diretrix listen address (SIM_DIRETRIX_ADDR)")
	flag.StringVar(&addrs.WorkAPI, "workapi-addr", env("SIM_WORKAPI_ADDR", ":8084"), "Work API listen address (SIM_WORKAPI_ADDR)")
	seed := flag.Int64("seed", int64(envInt("SIM_SEED", 1)), "population seed (SIM_SEED)")
	flag.IntVar(&cfg.People, "people", envInt("SIM_PEOPLE", 1000), "synthetic people (SIM_PEOPLE)")
	flag.IntVar(&cfg.Leads, "leads", envInt("SIM_LEADS", 0), "synthetic leads, 0 = as many as people (SIM_LEADS)")
	flag.StringVar(&cfg.C2SToken, "c2s-token", env("SIM_C2S_TOKEN", ""), "C2S token (SIM_C2S_TOKEN)")
	flag.StringVar(&cfg.DiretrixUser, "diretrix-user", env("SIM_DIRETRIX_USER", ""), "Diretrix user (SIM_DIRETRIX_USER)")
	flag.StringVar(&cfg.DiretrixPass, "diretrix-pass", env("SIM_DIRETRIX_PASS", ""), "Diretrix password (SIM_DIRETRIX_PASS)")
	flag.StringVar(&cfg.WorkToken, "work-token", env("SIM_WORK_TOKEN", ""), "Work API token (SIM_WORK_TOKEN)")
	flag.StringVar(&cfg.WorkAPIPath, "work-path", env("SIM_WORK_PATH", "/api"), "Work API mount path (SIM_WORK_PATH)")
	flag.StringVar(&faults, "faults", env("SIM_FAULTS", ""), `start-up faults as JSON, e.g. {"workapi":{"error_rate":0.1}} (SIM_FAULTS)`)
	limitFlag(&cfg.Limits.C2S, "c2s-limit", "SIM_C2S_LIMIT", "C2S and gateway (shared, per C2S token)")
	limitFlag(&cfg.Limits.Diretrix, "diretrix-limit", "SIM_DIRETRIX_LIMIT", "Diretrix (per user)")
	limitFlag(&cfg.Limits.WorkAPI, "workapi-limit", "SIM_WORKAPI_LIMIT", "Work API (per account token)")
	hiddenDef, _ := strconv.ParseBool(env("SIM_LEAD_MESSAGES_HIDDEN", "false"))
	hidden := flag.Bool("lead-messages-hidden", hiddenDef,
		"C2S (and so gateway) lead documents omit the messages list, like the confirmed C2S document (SIM_LEAD_MESSAGES_HIDDEN=true)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\nFlags:\n", os.Args[0])
		flag.PrintDefaults()
		fmt.Fprint(flag.CommandLine.Output(), usageTail)
	}
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.String("sim"))
		return
	}
	cfg.Seed = *seed
	if faults != "" {
		if err := json.Unmarshal([]byte(faults), &cfg.Faults); err != nil {
			fmt.Fprintln(os.Stderr, "sim: -faults / SIM_FAULTS:", err)
			os.Exit(2)
		}
	}
	if *hidden {
		cfg.Faults.C2S.LeadMessagesHidden = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := sim.New(cfg)
	u, err := s.Start(ctx, addrs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
	c := s.Config
	fmt.Printf("C2S_BASE_URL=%s\nC2S_GATEWAY_URL=%s\nDIRETRIX_BASE_URL=%s\nWORK_API_URL=%s\n",
		u.C2SBaseURL, u.GatewayURL, u.DiretrixBaseURL, u.WorkAPIURL)
	fmt.Printf("C2S_TOKEN=%s\nDIRETRIX_USER=%s\nDIRETRIX_PASS=%s\nWORK_API_KEY=%s\n",
		c.C2SToken, c.DiretrixUser, c.DiretrixPass, c.WorkToken)
	for _, l := range []struct {
		name string
		l    sim.Limit
	}{{"c2s+gateway", c.Limits.C2S}, {"diretrix", c.Limits.Diretrix}, {"workapi", c.Limits.WorkAPI}} {
		if l.l.Enabled() {
			fmt.Fprintf(os.Stderr, "sim: %s rate limit %s\n", l.name, l.l)
		}
	}
	<-ctx.Done()
	s.Close()
}
