// Package browser_test drives jetflow's web UI in headless Chromium (chromedp): it builds the
// jetflow binary of this checkout, runs `jetflow dev` as a subprocess with an API key, and
// uses the pages as a person would. It is a module of its own so that chromedp stays out of
// jetflow's go.mod.
//
// Without Chromium in PATH the test skips, unless JETFLOW_REQUIRE_BROWSER=1 (CI sets it), when
// it fails. On a failure it saves a screenshot (and the dev log) to a temporary directory that
// the failure message names.
package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nats-io/nats.go"
)

// requireBrowserEnv, set to 1, turns a missing Chromium into a failure instead of a skip.
const requireBrowserEnv = "JETFLOW_REQUIRE_BROWSER"

// stepTimeout bounds each step: every condition a step awaits must hold within it.
const stepTimeout = 30 * time.Second

// The instances the test starts: one it approves, one it terminates, one whose malformed
// event is dead-lettered.
const (
	approveID   = "ui-approve"
	terminateID = "ui-terminate"
	deadID      = "ui-dead"
)

func TestWebUI(t *testing.T) {
	chromium := findChromium(t)
	dev := startDev(t, buildJetflow(t, t.TempDir()), "browser-test-key")
	for _, id := range []string{approveID, terminateID, deadID} {
		dev.startWaiting(t, id)
	}
	b := newBrowser(t, chromium, dev)

	b.giveKeyOnTheList()
	b.filterByPrefix()
	b.approveThroughTheForm()
	b.terminate()
	b.fitsAPhone()
	b.deadLetters()
}

// findChromium returns the path of Chromium, or skips (fails with JETFLOW_REQUIRE_BROWSER=1).
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("no Chromium in PATH (chromium, chromium-browser, google-chrome) and %s=1 requires the browser test; install it (Debian: apt-get install chromium)", requireBrowserEnv)
	}
	t.Skipf("skipping the web UI browser test: no Chromium in PATH (Debian: apt-get install chromium); set %s=1 to make this a failure", requireBrowserEnv)
	return ""
}

// browser is one headless Chromium tab on the UI of dev.
type browser struct {
	t     *testing.T
	ctx   context.Context
	dev   *devProcess
	shots string // where failures leave screenshots
}

// browserStarts is how many times newBrowser tries to start Chromium: on a busy machine it now
// and then crashes while starting, which says nothing about the UI.
const browserStarts = 3

func newBrowser(t *testing.T, path string, dev *devProcess) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	var ctx context.Context
	for try := 1; ; try++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		c, cancel := chromedp.NewContext(actx)
		err := chromedp.Do(c) // starts the browser, with no deadline (see chromedp.Run)
		if err == nil {
			ctx = c
			t.Cleanup(func() { cancel(); cancelAlloc() })
			break
		}
		cancel()
		cancelAlloc()
		if try == browserStarts {
			t.Fatalf("starting %s failed %d times; the last: %v", path, try, err)
		}
		t.Logf("starting %s (try %d of %d): %v", path, try, browserStarts, err)
	}
	shots, err := os.MkdirTemp("", "jetflow-browser-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(shots) // kept, with the screenshots, when the test fails
		}
	})
	return &browser{t: t, ctx: ctx, dev: dev, shots: shots}
}

// step runs actions within stepTimeout; on an error it fails the test with a screenshot.
func (b *browser) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(name, err)
	}
}

// fail saves a screenshot of the page and the dev log, and fails the test naming both.
func (b *browser) fail(step string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	base := filepath.Join(b.shots, regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(step, "-"))
	saved := "no screenshot"
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(90)); serr == nil && os.WriteFile(base+".png", png, 0o644) == nil {
		saved = "screenshot " + base + ".png"
	}
	_ = os.WriteFile(base+".dev.log", []byte(b.dev.log()), 0o644)
	at, _ := chromedp.Run(ctx, chromedp.Location())
	b.t.Fatalf("step %q failed on %s: %v\n%s; jetflow dev log %s.dev.log", step, at, err, saved, base)
}

// until awaits a JavaScript condition. A page that navigates meanwhile (a form submitted, a
// link followed) ends the poll in the old page; it polls on in the new one.
func until(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(stepTimeout)
		for {
			poll := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(50*time.Millisecond))
			_, err := poll(ctx, t)
			if err == nil || !isNavigation(err) || time.Now().After(deadline) {
				if err != nil {
					return fmt.Errorf("awaiting %s: %w", cond, err)
				}
				return nil
			}
		}
	})
}

// isNavigation reports whether err says the page went away under a script.
func isNavigation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "navigated or closed") || strings.Contains(msg, "Cannot find context") ||
		strings.Contains(msg, "Execution context was destroyed")
}

// text is a JavaScript expression for the trimmed text of the element sel matches ("" if none).
func text(sel string) string {
	return fmt.Sprintf("(document.querySelector(%s)?.textContent ?? '').trim()", quote(sel))
}

// clear empties an input or textarea as a user would, firing its input event.
func clear(id string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const f = document.getElementById(%s); f.value = ''; f.dispatchEvent(new Event('input')); return true; })()`, quote(id))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return err
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// giveKeyOnTheList opens the instance list without a key, is told the API wants one, gives it,
// and sees the instances started and their count.
func (b *browser) giveKeyOnTheList() {
	b.step("the list asks for the key",
		chromedp.Navigate(b.dev.uiURL),
		until(`!document.getElementById('banner').hidden && document.getElementById('banner').textContent.includes('requires a key')`))
	b.step("give the key",
		chromedp.SendKeys(chromedp.ID("api-key"), b.dev.key),
		chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)),
		until(text("#key-state")+` === 'key set'`),
		until(`document.getElementById('banner').hidden`))
	for _, id := range []string{approveID, terminateID, deadID} {
		b.step("the list shows "+id,
			until(text(`tr[data-instance-id=`+quote(id)+`] a`)+` === `+quote(id)))
	}
	b.step("the counts show 3 running", until(text(`[data-count-status="Running"] .n`)+` === '3'`))
}

// filterByPrefix searches by ID prefix with the keyboard: the URL carries the filter and the
// list shows only the match.
func (b *browser) filterByPrefix() {
	b.step("search by ID prefix",
		chromedp.SendKeys(chromedp.ID("f-prefix"), "ui-term"+kb.Enter),
		until(`location.search.includes('prefix=ui-term')`),
		until(`document.querySelectorAll('#instances tbody tr').length === 1`),
		until(text(`#instances tbody tr a`)+` === `+quote(terminateID)))
}

// approveThroughTheForm opens the waiting instance from the list, sees what it waits for,
// gets refused invalid JSON, raises Approval with true, and sees it complete with the event on
// its timeline.
func (b *browser) approveThroughTheForm() {
	b.step("open the instance from the list",
		chromedp.Navigate(b.dev.uiURL),
		chromedp.Click(chromedp.CSS(`tr[data-instance-id=`+quote(approveID)+`] a`)),
		until(`location.pathname === '/ui/instances/`+approveID+`'`),
		until(text("#waiting-value")+` === 'event Approval'`),
		until(text("#status-value")+` === 'Running'`))
	b.step("invalid JSON is refused",
		clear("event-data"),
		chromedp.SendKeys(chromedp.ID("event-data"), "{bad"),
		until(`document.getElementById('raise-button').disabled`),
		until(text("#event-data-error")+`.startsWith('Not valid JSON')`))
	b.step("raise Approval with true",
		clear("event-data"),
		chromedp.SendKeys(chromedp.ID("event-data"), "true"),
		until(`!document.getElementById('raise-button').disabled`),
		chromedp.SendKeys(chromedp.ID("event-name"), "Approval"+kb.Enter),
		until(text("#action-result")+` === 'Raised Approval.'`))
	b.step("it completes with output approved",
		until(text("#status-value")+` === 'Completed'`),
		until(text("#output-value")+` === '"approved"'`))
	b.step("the timeline shows the event, consumed, and the activity",
		until(`[...document.querySelectorAll('li.entry[data-type="EventRaised"] .summary')].some(e => e.textContent.startsWith('Approval'))`),
		until(text(`#events tr[data-event="Approval"] .consumed`)+`.startsWith('turn ')`),
		until(`[...document.querySelectorAll('#activities tbody tr')].some(r => r.textContent.includes('ApproveBudget') && r.textContent.includes('completed'))`))
}

// terminate terminates a waiting instance from its page, then sees the API's error when it
// raises an event on it.
func (b *browser) terminate() {
	b.step("open the instance to terminate",
		chromedp.Navigate(b.dev.uiURL+"instances/"+terminateID),
		until(text("#waiting-value")+` === 'event Approval'`))
	b.step("terminate it",
		chromedp.SendKeys(chromedp.ID("reason"), "no longer needed"),
		chromedp.Click(chromedp.ID("terminate-button")),
		until(text("#action-result")+` === 'Terminate accepted.'`),
		until(text("#status-value")+` === 'Terminated'`),
		until(`[...document.querySelectorAll('li.entry[data-type="ExecutionTerminated"] .summary')].some(e => e.textContent.includes('no longer needed'))`))
	b.step("an event on the terminated instance shows the API's error",
		chromedp.SendKeys(chromedp.ID("event-name"), "Approval"+kb.Enter),
		until(text("#action-error")+`.startsWith('Raise Approval failed: 410 InstanceEnded')`))
}

// fitsAPhone shows an instance at a phone's width without a horizontal scroll bar.
func (b *browser) fitsAPhone() {
	b.step("an instance at a phone's width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(b.dev.uiURL+"instances/"+approveID),
		until(text("#status-value")+` === 'Completed'`),
		until(`document.documentElement.scrollWidth <= window.innerWidth`),
		chromedp.EmulateViewport(1280, 1000))
}

// deadLetters publishes a malformed event (as any NATS client may), waits for the API to list
// its dead letter, and finds it on the dead-letter page with its reason.
func (b *browser) deadLetters() {
	nc, err := nats.Connect(b.dev.natsURL)
	if err != nil {
		b.t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("jetflow.inst."+deadID+".event.Approval", []byte("{not json")); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(stepTimeout)
	for {
		code, body := b.dev.api(b.t, "GET", "deadletters", "")
		if code == http.StatusOK && strings.Contains(body, deadID) {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no dead letter for %s after %v: %d %s", deadID, stepTimeout, code, body)
		}
		time.Sleep(20 * time.Millisecond) // polling the API: there is nothing to await over HTTP
	}
	b.step("the dead-letter page lists it with its reason",
		chromedp.Navigate(b.dev.uiURL+"dead-letters"),
		until(`[...document.querySelectorAll('#dead-letters tbody tr')].some(r => r.textContent.includes('`+deadID+`'))`),
		until(`[...document.querySelectorAll('#dead-letters td.reason')].every(td => td.textContent.trim() !== '')`),
		until(`document.querySelector('#nav-dead-letters').hasAttribute('aria-current')`))
}
