package stack

import (
	"net/http"
	"time"
)

var client = &http.Client{Timeout: 2 * time.Second}

func get(url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
