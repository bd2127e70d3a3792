// Command sim runs the four upstream simulators (C2S, C2S gateway, Diretrix,
// Work API) for local runs. Flags default to SIM_* environment variables. It
// prints the product's environment for them and exits 0 on SIGTERM/SIGINT.
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
	flag.Parse()
	cfg.Seed = *seed
	if faults != "" {
		if err := json.Unmarshal([]byte(faults), &cfg.Faults); err != nil {
			fmt.Fprintln(os.Stderr, "sim: -faults / SIM_FAULTS:", err)
			os.Exit(2)
		}
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
	<-ctx.Done()
	s.Close()
}
