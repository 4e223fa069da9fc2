package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Screenshot files, in the directory given to -screenshots.
const (
	riverUIShot  = "riverui.png"
	temporalShot = "temporal-ui.png"
)

// takeScreenshots saves what River UI and Temporal UI show after the demo,
// with headless chromium. River UI asks for basic auth, which a headless
// browser cannot type into a prompt (and credentials in the URL leave the
// page blank), so chromium reaches it through a local proxy that adds them.
// Temporal UI shows the demo's workflows (those of its concert): a server
// make dev did not start may hold others.
func takeScreenshots(ctx context.Context, con *console, dir, workerURL, user, password, temporalUI, concert string) error {
	browser, err := findChromium()
	if err != nil {
		return err
	}
	if temporalUI == "" {
		return errors.New("no Temporal UI to take a picture of")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	target, err := url.Parse(workerURL)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.SetBasicAuth(user, password)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for _, shot := range []struct{ url, file string }{
		{"http://" + ln.Addr().String() + "/riverui/jobs?state=completed", riverUIShot},
		{temporalUI + "/namespaces/default/workflows?query=" + url.QueryEscape(fmt.Sprintf("WorkflowId STARTS_WITH %q", concert+"-")), temporalShot},
	} {
		path := filepath.Join(dir, shot.file)
		if err := screenshot(ctx, browser, shot.url, path); err != nil {
			return err
		}
		con.detail("%s", path)
	}
	return nil
}

func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium to take screenshots with; install it (Debian: apt-get install -y chromium)")
}

// screenshot loads url in a fresh headless chromium profile, lets the page
// run its scripts and fetch its data, and saves a 1440×900 picture.
func screenshot(ctx context.Context, browser, url, path string) error {
	profile, err := os.MkdirTemp("", "factos-dev-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+profile, "--window-size=1440,900", "--virtual-time-budget=15000",
		"--screenshot="+abs, url)
	// Chromium starts helper processes; kill them all with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium %s: %w\n%s", url, err, lastLines(string(out), 10))
	}
	if st, err := os.Stat(abs); err != nil || st.Size() == 0 {
		return fmt.Errorf("chromium saved no picture of %s", url)
	}
	return nil
}
