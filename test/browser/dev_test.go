package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/webui"
)

// startupTimeout bounds building the binary and `jetflow dev` coming up.
const startupTimeout = 3 * time.Minute

// devProcess is `jetflow dev` running as a subprocess on free ports with a temporary data
// directory.
type devProcess struct {
	natsURL string // the embedded NATS server
	apiURL  string // the Durable Functions HTTP API, ending in /
	uiURL   string // the web UI, ending in /
	key     string // the API key it requires
	logPath string // its stderr
}

// buildJetflow builds the jetflow binary of this checkout into dir.
func buildJetflow(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "jetflow")
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/jetflow")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building jetflow: %v\n%s", err, out)
	}
	return bin
}

var (
	natsLine = regexp.MustCompile(`NATS\s+(nats://\S+)`)
	apiLine  = regexp.MustCompile(`HTTP API is at (http://[^\s,]+)`)
	uiLine   = regexp.MustCompile(`web UI is at (http://[^\s,]+)`)
)

// startDev runs `jetflow dev` with API key key, data in a temporary directory and every port
// chosen by the system; it reads the URLs from the banner, and stops the process (SIGTERM)
// when the test ends.
func startDev(t *testing.T, bin, key string) *devProcess {
	t.Helper()
	dir := t.TempDir()
	d := &devProcess{key: key, logPath: filepath.Join(dir, "dev.log")}
	logFile, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--data", filepath.Join(dir, "data"),
		"--nats-listen", "127.0.0.1:-1", "--api-listen", "127.0.0.1:0", "--api-keys", key)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting jetflow dev: %v", err)
	}
	exited := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		wg.Wait()
		logFile.Close()
	})
	if err := d.readBanner(stdout, exited); err != nil {
		t.Fatalf("jetflow dev: %v; its log:\n%s", err, d.log())
	}
	if !strings.HasSuffix(d.apiURL, httpapi.BasePath+"/") || !strings.HasSuffix(d.uiURL, webui.Path) {
		t.Fatalf("jetflow dev serves the API at %s and the UI at %s, want them under %s and %s", d.apiURL, d.uiURL, httpapi.BasePath, webui.Path)
	}
	return d
}

// readBanner reads stdout until the banner has named the NATS, API and UI URLs; it drains the
// rest in the background.
func (d *devProcess) readBanner(stdout io.Reader, exited <-chan struct{}) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			for re, dst := range map[*regexp.Regexp]*string{natsLine: &d.natsURL, apiLine: &d.apiURL, uiLine: &d.uiURL} {
				if m := re.FindStringSubmatch(line); m != nil && *dst == "" {
					*dst = m[1]
				}
			}
			if d.natsURL != "" && d.apiURL != "" && d.uiURL != "" {
				found <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		found <- fmt.Errorf("its output ended before the banner named the NATS, API and UI URLs")
	}()
	select {
	case err := <-found:
		return err
	case <-exited:
		return fmt.Errorf("it exited during start-up")
	case <-time.After(startupTimeout):
		return fmt.Errorf("no banner after %v", startupTimeout)
	}
}

func (d *devProcess) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// api sends a request to the HTTP API with the key and returns the status code and body.
func (d *devProcess) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(d.apiURL, "/")+"/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-functions-key", d.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startWaiting starts BudgetApproval as id over the API and waits until it waits for
// Approval.
func (d *devProcess) startWaiting(t *testing.T, id string) {
	t.Helper()
	if code, body := d.api(t, "POST", "orchestrators/BudgetApproval/"+url.PathEscape(id), `{"amountCents": 500000, "requester": "ana"}`); code != http.StatusAccepted {
		t.Fatalf("starting %s: %d %s", id, code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := d.api(t, "GET", "instances/"+url.PathEscape(id), "")
		if bytes.Contains([]byte(body), []byte(`"events":["Approval"]`)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not waiting for Approval after 30s: %s", id, body)
		}
		time.Sleep(20 * time.Millisecond) // polling the API: there is nothing to await over HTTP
	}
}
