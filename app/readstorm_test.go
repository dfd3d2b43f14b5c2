package app

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestReadStormDoesNotStarveThePipeline runs a storm of API reads while
// orders are generated: the reads beyond the limit get 503 with Retry-After
// at once, none hangs, every status write of the pipeline succeeds, and
// every order ends final.
func TestReadStormDoesNotStarveThePipeline(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) { c.HTTP.MaxConcurrent = 4 })
	ctx := testenv.Context(t, 3*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	base := startPipelineHTTP(t, ctx, cfg)
	gen := make(chan generator.Result, 1)
	go func() {
		res, err := generator.Generate(ctx, cfg, generator.Options{Orders: 300, Seed: 21, Rate: 300, Logger: quietLogger()})
		if err != nil {
			t.Error(err)
		}
		gen <- res
	}()
	client := &http.Client{Timeout: 20 * time.Second}
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := true
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				path := "summary"
				if i%2 == 0 {
					path = "orders/" + strconv.Itoa(1+(g*10+i)%300)
				}
				resp, err := client.Get(base + path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "1" {
					retryAfter = false
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := <-gen
	waitAllFinal(t, cfg, res.FirstID, res.LastID, 300, 2*time.Minute)
	for code := range codes {
		if code != http.StatusOK && code != http.StatusNotFound && code != http.StatusServiceUnavailable {
			t.Errorf("the storm got %d × %d", codes[code], code)
		}
	}
	if codes[http.StatusServiceUnavailable] == 0 || !retryAfter {
		t.Errorf("no 503 with Retry-After beyond the limit: %v", codes)
	}
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^orderflow_status_write_errors_total (\S+)$`).FindSubmatch(body)
	if m == nil || string(m[1]) != "0" {
		t.Errorf("status write errors during the storm: %s", m)
	}
	t.Log(fmt.Sprint("storm: ", codes))
}
