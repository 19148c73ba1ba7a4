// A Go service that runs a cleanup task on a ticker and reports every run to Heartfly.
//
// From the environment: HEARTFLY_URL, CLEANUP_START_KEY (the check's start_key), CLEANUP_KEY
// (its key), CLEANUP_FAIL_KEY (its fail_key), SPOOL_DIR (the folder to clean), MAX_AGE (files
// older than this are removed, e.g. "24h"), INTERVAL (between runs, e.g. "1h") and RUNS (how
// many runs before exiting; 0 or unset: run forever).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

var client = http.Client{Timeout: 5 * time.Second}

// sendHeartbeat calls one Heartfly URL. A failed heartbeat is logged, never fatal.
func sendHeartbeat(url string) {
	resp, err := client.Get(url)
	if err != nil {
		log.Printf("heartbeat not sent: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Printf("heartbeat not recorded: %s", resp.Status)
	}
}

// cleanup removes the regular files in dir older than maxAge and returns how many it removed.
func cleanup(dir string, maxAge time.Duration) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, entry := range entries {
		info, err := entry.Info()
		if err != nil {
			return removed, err
		}
		if !info.Mode().IsRegular() || time.Since(info.ModTime()) < maxAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, entry.Name())); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

func mustDuration(name string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(name))
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	return d
}

func main() {
	base := os.Getenv("HEARTFLY_URL") + "/api/v1/heartbeat/"
	startURL := base + os.Getenv("CLEANUP_START_KEY")
	doneURL := base + os.Getenv("CLEANUP_KEY")
	failURL := base + os.Getenv("CLEANUP_FAIL_KEY")
	dir := os.Getenv("SPOOL_DIR")
	maxAge := mustDuration("MAX_AGE")
	interval := mustDuration("INTERVAL")
	runs, _ := strconv.Atoi(os.Getenv("RUNS"))

	for run := 1; ; run++ {
		sendHeartbeat(startURL)
		removed, err := cleanup(dir, maxAge)
		if err != nil {
			log.Printf("cleanup failed: %v", err)
			sendHeartbeat(failURL)
		} else {
			fmt.Printf("run %d: removed %d file(s)\n", run, removed)
			sendHeartbeat(doneURL)
		}
		if runs > 0 && run >= runs {
			return
		}
		time.Sleep(interval)
	}
}
