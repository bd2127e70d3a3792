package sim

import (
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
)

// benchHTTP drives one endpoint over loopback from parallel clients, the
// way the pipeline's benchmarks do.
func benchHTTP(b *testing.B, mk func(s *Sims, i int64) *http.Request) {
	s := start(b, Config{Seed: 1, People: 2000})
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Do(mk(s, n.Add(1)))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode >= 300 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
}

func BenchmarkWorkAPICPF(b *testing.B) {
	var cpfs []string
	benchHTTP(b, func(s *Sims, i int64) *http.Request {
		if cpfs == nil {
			for _, p := range s.Pop.People() {
				cpfs = append(cpfs, p.CPF)
			}
		}
		u := s.WorkAPIURL + "?" + url.Values{"token": {s.Config.WorkToken}, "modulo": {"cpf"}, "consulta": {cpfs[i%int64(len(cpfs))]}}.Encode()
		r, _ := http.NewRequest("GET", u, nil)
		return r
	})
}

func BenchmarkC2SGetLead(b *testing.B) {
	benchHTTP(b, func(s *Sims, i int64) *http.Request {
		r, _ := http.NewRequest("GET", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, nil)
		r.Header.Set("Authorization", "Bearer "+s.Config.C2SToken)
		return r
	})
}

func BenchmarkDiretrixPhone(b *testing.B) {
	benchHTTP(b, func(s *Sims, i int64) *http.Request {
		r, _ := http.NewRequest("GET", s.DiretrixBaseURL+"/Consultas/Pessoa/Telefone/"+HelenaPhone, nil)
		r.SetBasicAuth(s.Config.DiretrixUser, s.Config.DiretrixPass)
		return r
	})
}

func BenchmarkPopulation10k(b *testing.B) {
	for range b.N {
		NewPopulation(Config{Seed: 1, People: 10000})
	}
}
