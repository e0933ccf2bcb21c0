// Package deploy_test checks the deployment files in deploy/ with the real
// tools that read them: docker-compose (config), systemd-analyze (verify),
// fail2ban-regex against log lines the real postern binary printed, and a
// YAML parser for the Kubernetes manifests. No Docker engine is needed.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"gopkg.in/yaml.v3"

	"github.com/postern/postern/certs/certstest"
	"github.com/postern/postern/internal/testkit"
)

// The shutdown timeout every deployment file assumes (postern's default).
const shutdownTimeout = 30 * time.Second

// ---------------------------------------------------------------------------
// The postern binary, built once per test run.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// postern builds ./cmd/postern (once) and returns the binary's path.
func postern(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "postern-deploy-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "postern")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/postern")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/postern: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveFlags returns the flag names `postern serve --help` lists.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(postern(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("postern serve --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["upstream"] || !flags["listen"] {
		t.Fatalf("could not read the flags from `postern serve --help`:\n%s", out)
	}
	return flags
}

// isFlagDefault reports whether value (as an environment variable gives it,
// lists comma-separated) is the default `postern serve --help` shows for
// --name: setting it again in the image would be a second place to keep.
func isFlagDefault(t *testing.T, name, value string) bool {
	t.Helper()
	out, err := exec.Command(postern(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("postern serve --help: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^\s+--` + regexp.QuoteMeta(name) + `\b.*$`).Find(out)
	quoted := `"` + strings.Join(strings.Split(value, ","), `", "`) + `"`
	for _, shown := range []string{value, quoted} {
		if strings.Contains(string(line), "(default: "+shown+")") {
			return true
		}
	}
	return false
}

// pendingFlags are flags a deployment file may use before `postern serve`
// has them, while they are being added on another branch. The list is kept
// exact by TestPendingFlags: a listed flag that serve already has, or that no
// deployment file uses, fails it, so the list cannot hide a flag for good.
// Every flag the files use exists today, so it is empty.
var pendingFlags = map[string]bool{}

func checkFlagNames(t *testing.T, where string, names []string) {
	t.Helper()
	known := serveFlags(t)
	for _, n := range names {
		switch {
		case known[n]:
		case pendingFlags[n]:
			// Allowed while pending; TestPendingFlags keeps this honest.
		default:
			t.Errorf("%s: --%s is not a flag of `postern serve`", where, n)
		}
	}
}

// TestPendingFlags fails for a pending flag that `postern serve` already
// lists (drop it from the list, the files are now checked against it) and
// for one no deployment file uses (it was never needed).
func TestPendingFlags(t *testing.T) {
	known := serveFlags(t)
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(raw)
		text.WriteString("\n")
	}
	for n := range pendingFlags {
		if known[n] {
			t.Errorf("pendingFlags lists --%s, which `postern serve` has now: remove it", n)
		}
		if !flagUsed(text.String(), n) {
			t.Errorf("pendingFlags lists --%s, which no file in deploy/ uses: remove it", n)
		}
	}
}

// flagUsed reports whether text names the flag as --name, as a POSTERN_NAME
// variable or as a TOML key at the start of a line.
func flagUsed(text, name string) bool {
	env := "POSTERN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	re := regexp.MustCompile(`(?m)(--` + regexp.QuoteMeta(name) + `\b|\b` + env + `\b|^\s*` + regexp.QuoteMeta(name) + `\s*=)`)
	return re.MatchString(text)
}

// envFlagNames turns POSTERN_FOO_BAR keys into flag names (foo-bar).
func envFlagNames(env map[string]string) []string {
	var names []string
	for k := range env {
		if n, ok := strings.CutPrefix(k, "POSTERN_"); ok {
			names = append(names, strings.ReplaceAll(strings.ToLower(n), "_", "-"))
		}
	}
	slices.Sort(names)
	return names
}

// ---------------------------------------------------------------------------
// Dockerfile (no engine here: static checks of what `docker build` relies on).

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines into instructions.
	var instrs []string
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	find := func(keyword string) []string {
		var out []string
		for _, in := range instrs {
			if k, rest, _ := strings.Cut(in, " "); strings.EqualFold(k, keyword) {
				out = append(out, rest)
			}
		}
		return out
	}
	froms := find("FROM")
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:${GO_VERSION}-bookworm AS build") ||
		froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("FROM lines = %q, want a golang bookworm build stage and distroless static nonroot", froms)
	}
	if !slices.Contains(find("ARG"), "GO_VERSION=1.26") {
		t.Errorf("ARG GO_VERSION=1.26 missing")
	}
	build := strings.Join(find("RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/postern"} {
		if !strings.Contains(build, want) {
			t.Errorf("build RUN lacks %q", want)
		}
	}
	// The ldflags target must exist.
	main, err := os.ReadFile("../cmd/postern/main.go")
	if err != nil || !regexp.MustCompile(`(?m)^var version = `).Match(main) {
		t.Errorf("cmd/postern/main.go has no `var version` for -X main.version (err %v)", err)
	}
	// COPY sources of the build stage exist in the build context (repo root).
	for _, c := range find("COPY") {
		if strings.Contains(c, "--from=") {
			continue
		}
		fields := strings.Fields(c)
		for _, src := range fields[:len(fields)-1] {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("COPY source %s is not in the build context: %v", src, err)
			}
		}
	}
	if u := find("USER"); len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("USER = %q, want one non-root user", u)
	}
	expose := strings.Fields(strings.Join(find("EXPOSE"), " "))
	for _, p := range []string{"587/tcp", "465/tcp", "2525/tcp", "80/tcp"} {
		if !slices.Contains(expose, p) {
			t.Errorf("EXPOSE lacks %s (have %v)", p, expose)
		}
	}
	vol := strings.Join(find("VOLUME"), " ")
	for _, v := range []string{`"/var/lib/postern/acme"`, `"/etc/postern"`} {
		if !strings.Contains(vol, v) {
			t.Errorf("VOLUME lacks %s", v)
		}
	}
	hc := find("HEALTHCHECK")
	if len(hc) != 1 || !strings.Contains(hc[0], `CMD ["/postern", "healthcheck", "--url", "http://127.0.0.1:9090/healthz"]`) {
		t.Errorf("HEALTHCHECK = %q", hc)
	}
	env := strings.Join(find("ENV"), " ")
	// The HEALTHCHECK needs the metrics listener, which is off by default.
	if want := `POSTERN_METRICS=":9090"`; !strings.Contains(env, want) {
		t.Errorf("ENV lacks %s", want)
	}
	var envNames []string
	for _, m := range regexp.MustCompile(`POSTERN_([A-Z0-9_]+)="([^"]*)"`).FindAllStringSubmatch(env, -1) {
		name := strings.ReplaceAll(strings.ToLower(m[1]), "_", "-")
		envNames = append(envNames, name)
		if isFlagDefault(t, name, m[2]) {
			t.Errorf("ENV POSTERN_%s=%q repeats the flag's default: leave it out", m[1], m[2])
		}
	}
	checkFlagNames(t, "Dockerfile ENV", envNames)
	// The health check's subcommand and flag exist (cmd/postern's ops e2e
	// test runs it against a live /healthz).
	if out, err := exec.Command(postern(t), "healthcheck", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--url") {
		t.Errorf("`postern healthcheck --help` lists no --url (the HEALTHCHECK uses it): %v\n%s", err, out)
	}
	if e := find("ENTRYPOINT"); len(e) != 1 || e[0] != `["/postern"]` {
		t.Errorf("ENTRYPOINT = %q", e)
	}
	if c := find("CMD"); len(c) != 1 || c[0] != `["serve"]` {
		t.Errorf("CMD = %q", c)
	}
}

// ---------------------------------------------------------------------------
// docker-compose

// composeConfig runs `docker-compose config` (which resolves and validates
// the files against the compose schema) and returns the resolved YAML.
func composeConfig(t *testing.T, env []string, files ...string) ([]byte, error) {
	t.Helper()
	// docker-compose is Python: `version` fails if a module it imports is
	// missing, which `config` would report as an unclear traceback.
	tool := testkit.RequirePart(t, "docker-compose", "its Python modules",
		regexp.MustCompile(`docker-compose version \d`), "version")
	args := []string{"--project-directory", "."}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	cmd := exec.Command(tool, append(args, "config")...)
	// Only the variables we choose: no POSTERN_* from the caller's shell.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	return out, nil
}

type composeFile struct {
	Services map[string]struct {
		Ports []struct {
			Published any `yaml:"published"`
			Target    int `yaml:"target"`
		} `yaml:"ports"`
		Expose           []string          `yaml:"expose"`
		Environment      map[string]string `yaml:"environment"`
		StopGracePeriod  string            `yaml:"stop_grace_period"`
		ReadOnly         bool              `yaml:"read_only"`
		Volumes          []any             `yaml:"volumes"`
		Networks         map[string]any    `yaml:"networks"`
		Build            map[string]any    `yaml:"build"`
		DependsOn        map[string]any    `yaml:"depends_on"`
		SecurityOpt      []string          `yaml:"security_opt"`
		CapDrop          []string          `yaml:"cap_drop"`
		HealthcheckInCfg map[string]any    `yaml:"healthcheck"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeConfig(t *testing.T) {
	out, err := composeConfig(t, nil, "docker-compose.yml")
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("parsing the resolved compose file: %v\n%s", err, out)
	}
	pn, ok := cf.Services["postern"]
	if !ok {
		t.Fatalf("no postern service:\n%s", out)
	}
	pf, ok := cf.Services["postfix"]
	if !ok {
		t.Fatalf("no postfix service:\n%s", out)
	}

	var published []int
	for _, p := range pn.Ports {
		published = append(published, p.Target)
	}
	slices.Sort(published)
	if !slices.Equal(published, []int{80, 465, 587, 2525}) {
		t.Errorf("postern publishes %v, want 80 465 587 2525", published)
	}
	if len(pf.Ports) != 0 {
		t.Errorf("postfix publishes ports %v: port 25 must stay inside the network (anything in mynetworks relays)", pf.Ports)
	}
	if !slices.Contains(pf.Expose, "25") {
		t.Errorf("postfix does not expose 25 to the network: %v", pf.Expose)
	}
	if pn.Environment["POSTERN_UPSTREAM"] != "postfix:25" {
		t.Errorf("POSTERN_UPSTREAM = %q, want postfix:25", pn.Environment["POSTERN_UPSTREAM"])
	}
	checkFlagNames(t, "docker-compose.yml environment", envFlagNames(pn.Environment))

	// Postfix trusts exactly the compose network, which has a fixed subnet.
	var subnets []string
	for _, n := range cf.Networks {
		for _, c := range n.IPAM.Config {
			subnets = append(subnets, c.Subnet)
		}
	}
	if len(subnets) != 1 || pf.Environment["POSTFIX_MYNETWORKS"] != subnets[0] {
		t.Errorf("POSTFIX_MYNETWORKS = %q, network subnets %v: want the one fixed subnet", pf.Environment["POSTFIX_MYNETWORKS"], subnets)
	}
	for _, svc := range []string{"postern", "postfix"} {
		if _, ok := cf.Services[svc].Networks["mail"]; !ok {
			t.Errorf("service %s is not on the mail network", svc)
		}
	}
	if d, err := time.ParseDuration(pn.StopGracePeriod); err != nil || d <= shutdownTimeout {
		t.Errorf("postern stop_grace_period = %q, want more than the %v shutdown timeout", pn.StopGracePeriod, shutdownTimeout)
	}
	if st, err := time.ParseDuration(pn.Environment["POSTERN_SHUTDOWN_TIMEOUT"]); err != nil || st != shutdownTimeout {
		t.Errorf("POSTERN_SHUTDOWN_TIMEOUT = %q", pn.Environment["POSTERN_SHUTDOWN_TIMEOUT"])
	}
	if !pn.ReadOnly || !slices.Contains(pn.CapDrop, "ALL") {
		t.Errorf("postern should run read_only with cap_drop ALL (read_only %v, cap_drop %v)", pn.ReadOnly, pn.CapDrop)
	}
	vols := fmt.Sprint(pn.Volumes)
	for _, want := range []string{"/etc/postern", "postern-acme", "/var/lib/postern/acme"} {
		if !strings.Contains(vols, want) {
			t.Errorf("postern volumes %s lack %s", vols, want)
		}
	}
	if _, ok := cf.Volumes["postern-acme"]; !ok {
		t.Errorf("no named volume postern-acme for the ACME cache")
	}
	if df, _ := pn.Build["dockerfile"].(string); df != "deploy/Dockerfile" {
		t.Errorf("postern build dockerfile = %q", df)
	}
	for _, f := range []string{"postfix/Dockerfile", "postfix/main.cf", "postfix/entrypoint.sh"} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	// The Postfix image's main.cf names the same subnet (the entrypoint
	// overrides it from POSTFIX_MYNETWORKS, the file documents the default).
	if maincf, err := os.ReadFile("postfix/main.cf"); err != nil || !bytes.Contains(maincf, []byte(subnets[0])) {
		t.Errorf("postfix/main.cf does not name the compose subnet %v (err %v)", subnets, err)
	}

	// The ACME override: switches the static pair off, needs its variables.
	if _, err := composeConfig(t, nil, "docker-compose.yml", "docker-compose.acme.yml"); err == nil {
		t.Errorf("docker-compose.acme.yml without POSTERN_HOSTNAME/ACME_EMAIL: config succeeded, want a clear error")
	}
	out, err = composeConfig(t, []string{"POSTERN_HOSTNAME=mail.example.net", "ACME_EMAIL=postmaster@example.net"},
		"docker-compose.yml", "docker-compose.acme.yml")
	if err != nil {
		t.Fatalf("docker-compose config with the ACME override: %v", err)
	}
	cf = composeFile{}
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatal(err)
	}
	env := cf.Services["postern"].Environment
	checkFlagNames(t, "docker-compose.acme.yml environment", envFlagNames(env))
	if env["POSTERN_ACME_DOMAIN"] != "mail.example.net" || env["POSTERN_ACME_EMAIL"] != "postmaster@example.net" ||
		env["POSTERN_TLS_CERT"] != "" || env["POSTERN_HOSTNAME"] != "mail.example.net" {
		t.Errorf("ACME override environment = %v", env)
	}
}

// ---------------------------------------------------------------------------
// Kubernetes manifests

type k8sObject map[string]any

// get walks a path of map keys and list indexes.
func (o k8sObject) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

func (o k8sObject) str(path ...any) string { s, _ := o.get(path...).(string); return s }
func (o k8sObject) num(path ...any) int    { n, _ := o.get(path...).(int); return n }

func loadManifests(t *testing.T) map[string][]k8sObject {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	byKind := map[string][]k8sObject{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for i := 0; ; i++ {
			// Decoded as a plain map: yaml.v3 would give nested mappings the
			// named type of the outer one.
			var raw map[string]any
			err := dec.Decode(&raw)
			obj := k8sObject(raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if obj == nil {
				continue
			}
			kind, api := obj.str("kind"), obj.str("apiVersion")
			if kind == "" || api == "" {
				t.Errorf("%s document %d has no kind/apiVersion", f, i)
				continue
			}
			if kind != "Kustomization" && obj.str("metadata", "name") == "" {
				t.Errorf("%s document %d (%s) has no metadata.name", f, i, kind)
			}
			byKind[kind] = append(byKind[kind], obj)
		}
	}
	return byKind
}

func TestKubernetesManifests(t *testing.T) {
	kinds := loadManifests(t)
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "Kustomization"} {
		if len(kinds[k]) == 0 {
			t.Errorf("no %s in deploy/k8s", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	dep := kinds["Deployment"][0]
	if r := dep.num("spec", "replicas"); r < 2 {
		t.Errorf("Deployment replicas = %d, want >= 2", r)
	}
	labels, _ := dep.get("spec", "selector", "matchLabels").(map[string]any)
	podLabels, _ := dep.get("spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range labels {
		if podLabels[k] != v {
			t.Errorf("pod template lacks selector label %s=%v", k, v)
		}
	}
	pod := k8sObject(dep.get("spec", "template", "spec").(map[string]any))
	c := k8sObject(pod.get("containers", 0).(map[string]any))

	// Named container ports, and what the Service and probes refer to.
	ports := map[string]int{}
	for _, p := range c.get("ports").([]any) {
		pm := k8sObject(p.(map[string]any))
		ports[pm.str("name")] = pm.num("containerPort")
	}
	for _, probe := range []struct{ name, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		if got := c.str(probe.name, "httpGet", "path"); got != probe.path {
			t.Errorf("%s path = %q, want %s", probe.name, got, probe.path)
		}
		port := c.get(probe.name, "httpGet", "port")
		if name, ok := port.(string); ok {
			port = ports[name]
		}
		if port != 9090 {
			t.Errorf("%s port = %v, want the metrics port 9090", probe.name, port)
		}
	}
	preStop := c.num("lifecycle", "preStop", "sleep", "seconds")
	if preStop <= 0 {
		t.Errorf("no preStop sleep (the image has no shell, so it must be the sleep action)")
	}
	grace := pod.num("terminationGracePeriodSeconds")
	if time.Duration(grace)*time.Second <= time.Duration(preStop)*time.Second+shutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %d <= preStop %ds + shutdown-timeout %v", grace, preStop, shutdownTimeout)
	}
	if pod.get("securityContext", "runAsNonRoot") != true || pod.num("securityContext", "runAsUser") == 0 {
		t.Errorf("pod securityContext is not non-root: %v", pod.get("securityContext"))
	}
	if c.get("securityContext", "readOnlyRootFilesystem") != true || c.get("securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext = %v, want readOnlyRootFilesystem and no privilege escalation", c.get("securityContext"))
	}

	// The Service: 587/465/2525 over TCP, to named container ports.
	var svc k8sObject
	for _, s := range kinds["Service"] {
		if s.str("spec", "type") == "LoadBalancer" {
			svc = s
		}
	}
	if svc == nil {
		t.Fatalf("no LoadBalancer Service for the submission ports")
	}
	var svcPorts []int
	for _, p := range svc.get("spec", "ports").([]any) {
		pm := k8sObject(p.(map[string]any))
		svcPorts = append(svcPorts, pm.num("port"))
		if pm.str("protocol") != "TCP" {
			t.Errorf("Service port %d protocol %q", pm.num("port"), pm.str("protocol"))
		}
		if _, ok := ports[pm.str("targetPort")]; !ok {
			t.Errorf("Service port %d targets %q, not a container port name (%v)", pm.num("port"), pm.str("targetPort"), ports)
		}
	}
	slices.Sort(svcPorts)
	if !slices.Equal(svcPorts, []int{80, 465, 587, 2525}) {
		t.Errorf("Service ports %v, want 80 (ACME HTTP-01) 465 587 2525", svcPorts)
	}
	if p := svc.str("spec", "externalTrafficPolicy"); p != "Local" {
		t.Errorf("externalTrafficPolicy = %q, want Local (client addresses for lockout and logs)", p)
	}
	pdb := kinds["PodDisruptionBudget"][0]
	if pdb.str("spec", "selector", "matchLabels", "app.kubernetes.io/name") != "postern" {
		t.Errorf("PDB selector does not select the pods")
	}
	if pdb.num("spec", "minAvailable") < 1 || pdb.num("spec", "minAvailable") >= dep.num("spec", "replicas") {
		t.Errorf("PDB minAvailable %d with %d replicas blocks every drain or protects nothing", pdb.num("spec", "minAvailable"), dep.num("spec", "replicas"))
	}

	// The config file: valid TOML, known keys, listeners on the container
	// ports, shutdown timeout as assumed above, paths inside the mounts.
	cm := kinds["ConfigMap"][0]
	var cfg map[string]any
	if _, err := toml.Decode(cm.str("data", "postern.toml"), &cfg); err != nil {
		t.Fatalf("ConfigMap postern.toml: %v", err)
	}
	var keys []string
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	checkFlagNames(t, "ConfigMap postern.toml", keys)
	var listenPorts []int
	for _, l := range cfg["listen"].([]any) {
		s := l.(string)
		p, err := strconv.Atoi(s[strings.LastIndex(s, ":")+1:])
		if err != nil {
			t.Errorf("listen %q: %v", s, err)
		}
		listenPorts = append(listenPorts, p)
	}
	for name, p := range ports {
		if name != "metrics" && name != "acme-http" && !slices.Contains(listenPorts, p) {
			t.Errorf("container port %s=%d has no listener in postern.toml (%v)", name, p, listenPorts)
		}
	}
	if cfg["metrics"] != ":9090" {
		t.Errorf("metrics = %v, want :9090 (the probes' port)", cfg["metrics"])
	}
	if d, err := time.ParseDuration(fmt.Sprint(cfg["shutdown-timeout"])); err != nil || d != shutdownTimeout {
		t.Errorf("shutdown-timeout = %v", cfg["shutdown-timeout"])
	}
	mounts := map[string]bool{}
	mountVolume := map[string]k8sObject{} // mount path → its mount
	for _, m := range c.get("volumeMounts").([]any) {
		mo := k8sObject(m.(map[string]any))
		mounts[mo.str("mountPath")] = true
		mountVolume[mo.str("mountPath")] = mo
	}
	for _, key := range []string{"users", "sender-map", "acme-cache-key-file"} {
		p, _ := cfg[key].(string)
		if !mounts[filepath.Dir(p)] && !mounts[p] {
			t.Errorf("%s = %q is not inside a volume mount (%v)", key, p, mounts)
		}
	}
	if env := c.get("env", 0, "value"); env != "/etc/postern/config/postern.toml" || !mounts["/etc/postern/config"] {
		t.Errorf("POSTERN_CONFIG = %v is not the mounted ConfigMap", env)
	}
	var envNames []string
	for _, e := range c.get("env").([]any) {
		envNames = append(envNames, k8sObject(e.(map[string]any)).str("name"))
	}
	checkFlagNames(t, "Deployment env", envFlagNames(envMap(envNames)))
	checkReplicaSettings(t, cm.str("data", "postern.toml"), cfg, pod, mountVolume, ports, svc)

	// The volumes name the ConfigMap and Secrets the files define (the ACME
	// cache's key is made with kubectl create secret, never committed).
	names := map[string]bool{"Secret/postern-acme-cache-key": true}
	for kind, objs := range kinds {
		for _, o := range objs {
			names[kind+"/"+o.str("metadata", "name")] = true
		}
	}
	for _, v := range pod.get("volumes").([]any) {
		vo := k8sObject(v.(map[string]any))
		if n := vo.str("configMap", "name"); n != "" && !names["ConfigMap/"+n] {
			t.Errorf("volume %s uses ConfigMap %s, which is not defined", vo.str("name"), n)
		}
		if n := vo.str("secret", "secretName"); n != "" && !names["Secret/"+n] {
			t.Errorf("volume %s uses Secret %s, which is not defined", vo.str("name"), n)
		}
	}
	// The kustomization lists existing files, and not the example Secret
	// (apply -k would overwrite the real users file with it).
	var listed []string
	for _, r := range kinds["Kustomization"][0].get("resources").([]any) {
		listed = append(listed, r.(string))
		if _, err := os.Stat(filepath.Join("k8s", r.(string))); err != nil {
			t.Errorf("kustomization resource: %v", err)
		}
	}
	if slices.Contains(listed, "secret.yaml") {
		t.Errorf("kustomization applies the example users Secret")
	}
}

// ---------------------------------------------------------------------------
// systemd

func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("systemd/postern.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{
		"User=postern", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"ReadWritePaths=/var/lib/postern", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID",
		"EnvironmentFile=-/etc/default/postern", "ExecStart=/usr/local/bin/postern serve",
		"RuntimeDirectory=postern", // the control socket's /run/postern (issue 23)
	} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks the line %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindStringSubmatch(unit)
	if m == nil {
		t.Errorf("no TimeoutStopSec=Ns")
	} else if n, _ := strconv.Atoi(m[1]); time.Duration(n)*time.Second <= shutdownTimeout {
		t.Errorf("TimeoutStopSec=%ss is not longer than the %v shutdown timeout", m[1], shutdownTimeout)
	}

	analyze := testkit.RequireTool(t, "systemd-analyze")
	// verify checks that every Exec*= binary exists.
	testkit.RequireFile(t, "/bin/kill", "/bin/kill for ExecReload= (package procps)")
	// verify checks the ExecStart binary exists: point it at the built one.
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/postern", postern(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// verify exits 0 on many problems (unknown keys, bad values) and only
	// prints them, so any output is a failure too.
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// ---------------------------------------------------------------------------
// fail2ban: the filter against lines the real binary printed.

// Logins chosen to smuggle another address into the line.
var craftedLogins = []string{
	`x client=10.9.9.9`,
	`x" client=10.9.9.9 msg="auth failed`,
	`x","client":"10.9.9.9","msg":"auth failed`,
	"x\nclient=10.9.9.9",
}

var (
	demoPortRE  = regexp.MustCompile(`STARTTLS submission: 127\.0\.0\.1:(\d+)`)
	demoLoginRE = regexp.MustCompile(`login: (\S+)\s+password: (\S+)`)
)

type demo struct {
	proc            *testkit.Process
	addr            string
	login, password string
}

func startDemo(t *testing.T, format string) *demo {
	t.Helper()
	cmd := exec.Command(postern(t), "demo", "--dir", t.TempDir(), "--log-format", format)
	p := testkit.StartCmd(t, cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := p.Output()
		pm, lm := demoPortRE.FindStringSubmatch(out), demoLoginRE.FindStringSubmatch(out)
		if pm != nil && lm != nil {
			d := &demo{proc: p, addr: "127.0.0.1:" + pm[1], login: lm[1], password: lm[2]}
			testkit.WaitTCP(t, d.addr, 10*time.Second)
			return d
		}
		select {
		case <-p.Done():
			t.Fatalf("postern demo exited:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("postern demo did not print its port and login:\n%s", out)
		}
	}
}

// tryAuth opens a connection, does STARTTLS and AUTH PLAIN. With send, it
// also sends one message after a successful AUTH.
func tryAuth(t *testing.T, addr, login, password string, send bool) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("connecting to %s with STARTTLS: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", login, password)); err != nil {
		return err
	}
	if send {
		msg := "From: " + login + "\r\nTo: friend@example.org\r\nSubject: fail2ban test\r\n\r\nhello\r\n"
		if err := c.SendMail(login, []string{"friend@example.org"}, strings.NewReader(msg)); err != nil {
			t.Fatalf("sending a message: %v", err)
		}
	}
	_ = c.Quit()
	return nil
}

func wantAuthFailed(t *testing.T, err error, code int) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("AUTH error = %v, want %d", err, code)
	}
}

// logSource is what logLines reads: a *testkit.Process's output so far.
type logSource interface{ Output() string }

// logLines returns the process's log lines (text or json), without the
// demo's banner text, once for every msg in want at least want[msg] lines
// with that msg have appeared, in whatever order they came: two lines of one
// event may be written in either order (the lockout's line comes from the
// limiter, before the session's "auth failed" line for the same failure).
func logLines(t *testing.T, p logSource, want map[string]int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var lines []string
		got := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		for sc.Scan() {
			l := sc.Text()
			if !strings.HasPrefix(l, "time=") && !strings.HasPrefix(l, `{"time":`) {
				continue
			}
			lines = append(lines, l)
			for msg := range want {
				if strings.Contains(l, `msg="`+msg+`"`) || strings.Contains(l, `"msg":"`+msg+`"`) {
					got[msg]++
				}
			}
		}
		done := true
		for msg, n := range want {
			done = done && got[msg] >= n
		}
		if done {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines after 10 s: %v, want at least %v:\n%s", got, want, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fail2banIPs runs fail2ban-regex with the project's filter on lines and
// returns the addresses it extracted, one per matched line.
func fail2banIPs(t *testing.T, lines []string) []string {
	t.Helper()
	tool := testkit.RequireTool(t, "fail2ban-regex")
	f := filepath.Join(t.TempDir(), "postern.log")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	filter, err := filepath.Abs("fail2ban/filter.d/postern.conf")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "--out", "ip", f, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	ips := strings.Fields(string(out))
	for _, ip := range ips {
		if !regexp.MustCompile(`^[0-9a-fA-F:.]+$`).MatchString(ip) {
			t.Fatalf("fail2ban-regex printed something other than addresses:\n%s", out)
		}
	}
	return ips
}

func split(lines []string, msgs ...string) (in, out []string) {
	for _, l := range lines {
		hit := false
		for _, m := range msgs {
			if strings.Contains(l, `msg="`+m+`"`) || strings.Contains(l, `"msg":"`+m+`"`) {
				hit = true
			}
		}
		if hit {
			in = append(in, l)
		} else {
			out = append(out, l)
		}
	}
	return in, out
}

func TestFail2banFilterDemo(t *testing.T) {
	testkit.RequireTool(t, "fail2ban-regex")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			d := startDemo(t, format)
			// Failures: the right login with wrong passwords, then logins
			// that try to smuggle another address into the line.
			failures := 0
			for _, login := range append([]string{d.login, d.login}, craftedLogins...) {
				wantAuthFailed(t, tryAuth(t, d.addr, login, "wrong-"+d.password, false), 535)
				failures++
			}
			if err := tryAuth(t, d.addr, d.login, d.password, true); err != nil {
				t.Fatalf("AUTH with the right password: %v", err)
			}
			lines := logLines(t, d.proc, map[string]int{"auth failed": failures, "message accepted": 1})
			failLines, otherLines := split(lines, "auth failed")
			okLines, _ := split(lines, "auth ok", "message accepted")
			if len(okLines) < 2 {
				t.Fatalf("no auth ok / message accepted lines in:\n%s", strings.Join(lines, "\n"))
			}

			// Every line together: one match per failure, all 127.0.0.1.
			ips := fail2banIPs(t, lines)
			if len(ips) != failures {
				t.Errorf("fail2ban matched %d lines, want %d (one per failed AUTH):\n%s", len(ips), failures, strings.Join(lines, "\n"))
			}
			for _, ip := range ips {
				if ip != "127.0.0.1" {
					t.Errorf("fail2ban extracted %s, want only 127.0.0.1 (a crafted login injected it)", ip)
				}
			}
			if got := fail2banIPs(t, failLines); len(got) != len(failLines) {
				t.Errorf("failure lines: %d of %d matched", len(got), len(failLines))
			}
			// Success lines (and connects, and every other line) never match.
			if got := fail2banIPs(t, okLines); len(got) != 0 {
				t.Errorf("success lines matched: %v\n%s", got, strings.Join(okLines, "\n"))
			}
			if got := fail2banIPs(t, otherLines); len(got) != 0 {
				t.Errorf("lines other than auth failures matched: %v\n%s", got, strings.Join(otherLines, "\n"))
			}
			// The same lines as the systemd journal hands them to fail2ban
			// (backend = systemd): "HOST IDENT[PID]: " before the line.
			var journal []string
			for _, l := range lines {
				journal = append(journal, time.Now().Format(time.Stamp)+" mx postern[4242]: "+l)
			}
			if got := fail2banIPs(t, journal); len(got) != failures || slices.ContainsFunc(got, func(ip string) bool { return ip != "127.0.0.1" }) {
				t.Errorf("journal-style lines: fail2ban extracted %v, want %d × 127.0.0.1", got, failures)
			}
		})
	}
}

// lockoutLines are the lines two failures with --auth-max-failures 2 log:
// two "auth failed" and one lockout line, the lockout's before the second
// failure's own.
func lockoutLines() map[string]int {
	return map[string]int{"auth failed": 2, "auth lockout: address blocked": 1}
}

// slowLog hands out its lines one more at each read, as a process's pipe
// may deliver them.
type slowLog struct {
	lines []string
	reads int
}

func (s *slowLog) Output() string {
	s.reads++
	return strings.Join(s.lines[:min(s.reads, len(s.lines))], "\n") + "\n"
}

// TestLogLinesAnyOrder: with the lockout line before the second "auth
// failed" (as postern writes them), the wait for the lockout's lines returns
// only when all three are there.
func TestLogLinesAnyOrder(t *testing.T) {
	log := &slowLog{lines: []string{
		`time=1 level=WARN msg="auth failed" client=127.0.0.1 conn_failures=1`,
		`time=2 level=WARN msg="auth lockout: address blocked" client=127.0.0.1`,
		`time=3 level=WARN msg="auth failed" client=127.0.0.1 conn_failures=2`,
	}}
	lines := logLines(t, log, lockoutLines())
	if got, _ := split(lines, "auth failed"); len(got) != 2 {
		t.Errorf("logLines returned %d auth failed lines, want 2:\n%s", len(got), strings.Join(lines, "\n"))
	}
}

// TestFail2banFilterLockout runs `postern serve` (the demo has no lockout)
// with --auth-max-failures 2 so it prints "auth lockout: address blocked".
func TestFail2banFilterLockout(t *testing.T) {
	testkit.RequireTool(t, "fail2ban-regex")
	bin := postern(t)
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	hash := exec.Command(bin, "hash-password")
	hash.Stdin = strings.NewReader("right-password\n")
	h, err := hash.Output()
	if err != nil {
		t.Fatalf("postern hash-password: %v", err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("alice@example.test:"+strings.TrimSpace(string(h))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			cmd := exec.Command(bin, "serve",
				"--hostname", "localhost",
				"--listen", "starttls=127.0.0.1:0", // the bound address is logged
				"--upstream", "127.0.0.1:1", // AUTH never reaches it
				"--users", users,
				"--tls-cert", certFile, "--tls-key", keyFile,
				"--acme-http", "none",
				"--auth-max-failures", "2",
				"--log-format", format)
			cmd.Env = cleanEnv()
			p := testkit.StartCmd(t, cmd)
			addr := waitListenAddr(t, p)
			testkit.WaitTCP(t, addr, 15*time.Second)

			wantAuthFailed(t, tryAuth(t, addr, craftedLogins[0], "wrong", false), 535)
			err := tryAuth(t, addr, craftedLogins[1], "wrong", false)
			var se *smtp.SMTPError
			if !errors.As(err, &se) || (se.Code != 535 && se.Code != 421) {
				t.Fatalf("second failed AUTH: %v, want 535 or 421", err)
			}
			lines := logLines(t, p, lockoutLines())
			lockLines, _ := split(lines, "auth lockout: address blocked")
			failLines, _ := split(lines, "auth failed")
			if len(lockLines) != 1 || len(failLines) != 2 {
				t.Fatalf("want 2 auth failed and 1 lockout line:\n%s", strings.Join(lines, "\n"))
			}
			if got := fail2banIPs(t, lockLines); !slices.Equal(got, []string{"127.0.0.1"}) {
				t.Errorf("lockout line: fail2ban extracted %v, want [127.0.0.1]\n%s", got, lockLines[0])
			}
			if got := fail2banIPs(t, lines); len(got) != 3 {
				t.Errorf("all lines: fail2ban extracted %v, want 3 × 127.0.0.1", got)
			}
		})
	}
}

// TestFail2banJail checks that fail2ban accepts the jail together with the
// filter (fail2ban-client --test on a copy of /etc/fail2ban).
func TestFail2banJail(t *testing.T) {
	client := testkit.RequireTool(t, "fail2ban-client")
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		if testkit.InCI() {
			t.Fatalf("fail2ban is installed without /etc/fail2ban: %v", err)
		}
		t.Skipf("no /etc/fail2ban: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "fail2ban")
	if out, err := exec.Command("cp", "-r", "/etc/fail2ban", conf).CombinedOutput(); err != nil {
		t.Fatalf("copying /etc/fail2ban: %v\n%s", err, out)
	}
	// Only our jail: the distribution's enables sshd, whose log may be absent.
	jails, _ := filepath.Glob(filepath.Join(conf, "jail.d", "*"))
	for _, j := range jails {
		os.Remove(j)
	}
	for _, f := range []string{"filter.d/postern.conf", "jail.d/postern.conf"} {
		raw, err := os.ReadFile(filepath.Join("fail2ban", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(client, "-c", conf, "--test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration test is successful") {
		t.Errorf("fail2ban-client --test: %v\n%s", err, out)
	}
	dump, err := exec.Command(client, "-c", conf, "--dp").CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-client --dp: %v\n%s", err, dump)
	}
	for _, want := range []string{"['add', 'postern', 'systemd']", "'_SYSTEMD_UNIT=postern.service'", "587,465,2525"} {
		if !strings.Contains(string(dump), want) {
			t.Errorf("fail2ban's parsed jail lacks %s:\n%s", want, dump)
		}
	}
}

// cleanEnv is the environment without POSTERN_* variables of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTERN_") {
			env = append(env, kv)
		}
	}
	return env
}

// listenLine matches serve's "listening" line in text and in JSON format
// and captures the bound address (whole: followed by a quote or the end of
// the line, not cut off by a write still under way).
var listenLine = regexp.MustCompile(`listening"?[ ,]"?addr"?[=:]"?(127\.0\.0\.1:[0-9]+)[" \n]`)

// waitListenAddr waits until postern logged its first listener and returns
// the bound address.
func waitListenAddr(t *testing.T, p *testkit.Process) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := listenLine.FindStringSubmatch(p.Output()); m != nil {
			return m[1]
		}
		select {
		case <-p.Done():
			t.Fatalf("postern exited early:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postern logged no listener:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, _ := certstest.SelfSigned(t, "localhost")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestExampleConfig runs `postern check-config` on config/postern.toml.example
// (the systemd example) with its paths pointed at temporary files.
func TestExampleConfig(t *testing.T) {
	bin := postern(t)
	raw, err := os.ReadFile("config/postern.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if _, err := toml.Decode(string(raw), &cfg); err != nil {
		t.Fatalf("postern.toml.example: %v", err)
	}
	known := serveFlags(t)
	dir := t.TempDir()
	hash := exec.Command(bin, "hash-password")
	hash.Stdin = strings.NewReader("secret\n")
	h, err := hash.Output()
	if err != nil {
		t.Fatalf("postern hash-password: %v", err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("alice@example.org:"+strings.TrimSpace(string(h))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sender, err := filepath.Abs("config/sender_login_maps")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for from, to := range map[string]string{
		`"/etc/postern/users"`:                          strconv.Quote(users),
		`"/etc/postern/sender_login_maps"`:              strconv.Quote(sender),
		`"/var/lib/postern/acme"`:                       strconv.Quote(filepath.Join(dir, "acme")),
		`"starttls=:587", "tls=:465", "starttls=:2525"`: `"starttls=127.0.0.1:0"`,
	} {
		if !strings.Contains(text, from) {
			t.Fatalf("postern.toml.example no longer contains %s", from)
		}
		text = strings.ReplaceAll(text, from, to)
	}
	// Keys of flags that are still pending are dropped (see pendingFlags).
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		key, _, ok := strings.Cut(l, " =")
		if ok && !strings.HasPrefix(key, "#") && !known[key] {
			if !pendingFlags[key] {
				t.Errorf("postern.toml.example: unknown key %q", key)
			}
			// check-config would refuse it; TestPendingFlags bounds the list.
			continue
		}
		lines = append(lines, l)
	}
	conf := filepath.Join(dir, "postern.toml")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check-config", "--config", conf)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Errorf("postern check-config on postern.toml.example: %v\n%s", err, out)
	}
}
