// A Go service that exports every tenant's orders on a ticker and reports each export to Heartfly
// as a run of its own: a start ping and a completion ping that share a run id. The exports of one
// round run concurrently, and the run ids keep them apart.
//
// From the environment: HEARTFLY_URL, EXPORT_KEY (the check's key), TENANTS (comma-separated),
// SOURCE_DIR (one <tenant>.csv each), EXPORT_DIR (where <tenant>.csv.gz is written), INTERVAL
// (between rounds, e.g. "1h") and ROUNDS (how many rounds before exiting; 0 or unset: forever).
package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

var client = http.Client{Timeout: 5 * time.Second}

// ping calls <HEARTFLY_URL>/ping/<EXPORT_KEY><event>?rid=<runID>&<params>. Logged, never fatal.
func ping(event, runID string, params url.Values) {
	if params == nil {
		params = url.Values{}
	}
	params.Set("rid", runID)
	target := os.Getenv("HEARTFLY_URL") + "/ping/" + os.Getenv("EXPORT_KEY") + event + "?" + params.Encode()
	resp, err := client.Get(target)
	if err != nil {
		log.Printf("heartbeat not sent: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Printf("heartbeat not recorded: %s", resp.Status)
	}
}

// export gzips SOURCE_DIR/<tenant>.csv into EXPORT_DIR/<tenant>.csv.gz; returns the bytes read.
func export(tenant, sourceDir, exportDir string) (int64, error) {
	src, err := os.Open(filepath.Join(sourceDir, tenant+".csv"))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	final := filepath.Join(exportDir, tenant+".csv.gz")
	dst, err := os.Create(final + ".tmp")
	if err != nil {
		return 0, err
	}
	zw := gzip.NewWriter(dst)
	n, err := io.Copy(zw, src)
	if err == nil {
		err = zw.Close()
	}
	if closeErr := dst.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(final+".tmp", final)
	}
	return n, err
}

// exportAll runs one round: every tenant's export at once, each one a run in Heartfly.
func exportAll(tenants []string, sourceDir, exportDir string) {
	var wg sync.WaitGroup
	for _, tenant := range tenants {
		wg.Add(1)
		go func(tenant string) {
			defer wg.Done()
			runID := tenant + "-" + time.Now().UTC().Format("20060102T150405.000")
			ping("/start", runID, nil)
			n, err := export(tenant, sourceDir, exportDir)
			if err != nil {
				log.Printf("export of %s failed: %v", tenant, err)
				ping("/fail", runID, nil)
				return
			}
			fmt.Printf("exported %s: %d bytes\n", tenant, n)
			ping("", runID, url.Values{"m_bytes": {strconv.FormatInt(n, 10)}})
		}(tenant)
	}
	wg.Wait()
}

func main() {
	tenants := strings.Split(os.Getenv("TENANTS"), ",")
	interval, err := time.ParseDuration(os.Getenv("INTERVAL"))
	if err != nil {
		log.Fatalf("INTERVAL: %v", err)
	}
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for round := 1; ; round++ {
		exportAll(tenants, os.Getenv("SOURCE_DIR"), os.Getenv("EXPORT_DIR"))
		if rounds > 0 && round >= rounds {
			return
		}
		time.Sleep(interval)
	}
}
