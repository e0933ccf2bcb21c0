package deploy_test

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"

	"github.com/postern/postern/internal/testkit"
)

// The replicas set-up (README "Running several replicas"): HAProxy in
// front with PROXY v2, --state on a shared Redis, --acme-cache redis with
// its key file, several --upstream. docker-compose.replicas.yml,
// haproxy/replicas.cfg and k8s/ carry it; these tests hold them to it with
// the tools that read them (docker-compose config, haproxy -c, postern
// check-config against a real Redis).

const replicasCompose = "docker-compose.replicas.yml"

// replicasEnv are the variables docker-compose.replicas.yml requires.
var replicasEnv = []string{"POSTERN_HOSTNAME=mail.example.net", "ACME_EMAIL=postmaster@example.net"}

// replicasComposeFile is the part of the resolved replicas file the tests
// read.
type replicasComposeFile struct {
	Services map[string]struct {
		Ports []struct {
			Target int `yaml:"target"`
		} `yaml:"ports"`
		Environment map[string]string         `yaml:"environment"`
		Volumes     []string                  `yaml:"volumes"`
		Networks    map[string]map[string]any `yaml:"networks"`
		ReadOnly    bool                      `yaml:"read_only"`
		CapDrop     []string                  `yaml:"cap_drop"`
		StopGrace   string                    `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

func TestComposeReplicasConfig(t *testing.T) {
	if _, err := composeConfig(t, nil, replicasCompose); err == nil {
		t.Errorf("%s without POSTERN_HOSTNAME/ACME_EMAIL: config succeeded, want a clear error", replicasCompose)
	}
	out, err := composeConfig(t, replicasEnv, replicasCompose)
	if err != nil {
		t.Fatalf("docker-compose config %s: %v", replicasCompose, err)
	}
	var cf replicasComposeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("parsing the resolved compose file: %v\n%s", err, out)
	}
	subnet := func(network string) netip.Prefix {
		n, ok := cf.Networks[network]
		if !ok || len(n.IPAM.Config) != 1 {
			t.Fatalf("network %s has no one fixed subnet: %+v", network, n)
		}
		p, err := netip.ParsePrefix(n.IPAM.Config[0].Subnet)
		if err != nil {
			t.Fatalf("network %s: %v", network, err)
		}
		return p
	}
	front, mail := subnet("front"), subnet("mail")

	// HAProxy: the only published ports, a fixed address on the front
	// network, off the mail network (it must not reach Postfix).
	hp, ok := cf.Services["haproxy"]
	if !ok {
		t.Fatalf("no haproxy service:\n%s", out)
	}
	var published []int
	for _, p := range hp.Ports {
		published = append(published, p.Target)
	}
	slices.Sort(published)
	if !slices.Equal(published, []int{80, 465, 587, 2525}) {
		t.Errorf("haproxy publishes %v, want 80 465 587 2525", published)
	}
	if _, ok := hp.Networks["mail"]; ok {
		t.Errorf("haproxy is on the mail network: it could relay through Postfix")
	}
	fixed, _ := hp.Networks["front"]["ipv4_address"].(string)
	haproxyAddr, err := netip.ParseAddr(fixed)
	if err != nil || !front.Contains(haproxyAddr) {
		t.Fatalf("haproxy's ipv4_address on front = %v (err %v), want a fixed address in %v", hp.Networks["front"], err, front)
	}
	if !slices.ContainsFunc(hp.Volumes, func(v string) bool {
		return strings.HasSuffix(v, "/deploy/haproxy/replicas.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro")
	}) {
		t.Errorf("haproxy does not mount haproxy/replicas.cfg as its configuration: %v", hp.Volumes)
	}

	// The replicas.
	var replicas []string
	for name := range cf.Services {
		if regexp.MustCompile(`^postern\d+$`).MatchString(name) {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(replicas)
	if len(replicas) < 2 {
		t.Fatalf("replicas %v, want at least 2", replicas)
	}
	var shared map[string]string // the environment but the upstreams' order
	acmeVolumes := map[string]string{}
	for _, name := range replicas {
		svc := cf.Services[name]
		env := svc.Environment
		checkFlagNames(t, replicasCompose+" "+name+" environment", envFlagNames(env))
		if len(svc.Ports) != 0 {
			t.Errorf("%s publishes %v: clients must come through HAProxy", name, svc.Ports)
		}
		for _, n := range []string{"front", "mail"} {
			if _, ok := svc.Networks[n]; !ok {
				t.Errorf("%s is not on the %s network", name, n)
			}
		}
		if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") || svc.StopGrace != "45s" {
			t.Errorf("%s: read_only %v, cap_drop %v, stop_grace_period %q; want as docker-compose.yml's postern", name, svc.ReadOnly, svc.CapDrop, svc.StopGrace)
		}
		// PROXY v2 from HAProxy only.
		from, err := netip.ParsePrefix(env["POSTERN_PROXY_PROTOCOL_FROM"])
		if err != nil || from.Bits() != 32 || !from.Contains(haproxyAddr) {
			t.Errorf("%s: POSTERN_PROXY_PROTOCOL_FROM = %q, want HAProxy's address %v/32 alone", name, env["POSTERN_PROXY_PROTOCOL_FROM"], haproxyAddr)
		}
		// Shared state on the Redis service.
		u, err := url.Parse(env["POSTERN_STATE"])
		if err != nil || u.Scheme != "redis" {
			t.Errorf("%s: POSTERN_STATE = %q, want redis://", name, env["POSTERN_STATE"])
		} else if r, ok := cf.Services[u.Hostname()]; !ok {
			t.Errorf("%s: POSTERN_STATE names %q, not a service", name, u.Hostname())
		} else if _, ok := r.Networks["mail"]; !ok {
			t.Errorf("the state service %s is not on the mail network", u.Hostname())
		}
		// The ACME cache in that Redis, the key in the mounted config.
		if env["POSTERN_ACME_CACHE"] != "redis" || env["POSTERN_ACME_DOMAIN"] != "mail.example.net" ||
			env["POSTERN_ACME_EMAIL"] != "postmaster@example.net" {
			t.Errorf("%s: ACME environment = cache %q domain %q email %q", name, env["POSTERN_ACME_CACHE"], env["POSTERN_ACME_DOMAIN"], env["POSTERN_ACME_EMAIL"])
		}
		if key := env["POSTERN_ACME_CACHE_KEY_FILE"]; filepath.Dir(key) != "/etc/postern" ||
			!slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasSuffix(v, "/deploy/config:/etc/postern:ro") }) {
			t.Errorf("%s: POSTERN_ACME_CACHE_KEY_FILE = %q is not in config/ mounted at /etc/postern (%v)", name, key, svc.Volumes)
		}
		// Each replica's local copy (--acme-cache-local's default) in a
		// volume of its own.
		for _, v := range svc.Volumes {
			if src, ok := strings.CutSuffix(v, ":/var/lib/postern/acme:rw"); ok {
				acmeVolumes[name] = src
			}
		}
		// Several upstreams, each a Postfix on the mail network that
		// trusts only that network.
		ups := strings.Split(env["POSTERN_UPSTREAM"], ",")
		if len(ups) < 2 {
			t.Errorf("%s: POSTERN_UPSTREAM = %q, want several", name, env["POSTERN_UPSTREAM"])
		}
		for _, up := range ups {
			host, port, _ := strings.Cut(up, ":")
			pf, ok := cf.Services[host]
			if !ok || port != "25" {
				t.Errorf("%s: upstream %q is not a service's port 25", name, up)
				continue
			}
			if _, ok := pf.Networks["mail"]; !ok || len(pf.Ports) != 0 {
				t.Errorf("upstream %s: networks %v, published %v; want the mail network only, nothing published", host, pf.Networks, pf.Ports)
			}
			if pf.Environment["POSTFIX_MYNETWORKS"] != mail.String() || mail.Contains(haproxyAddr) {
				t.Errorf("upstream %s: POSTFIX_MYNETWORKS = %q, want the mail network %v (without HAProxy)", host, pf.Environment["POSTFIX_MYNETWORKS"], mail)
			}
		}
		slices.Sort(ups)
		rest := map[string]string{"POSTERN_UPSTREAM": strings.Join(ups, ",")}
		for k, v := range env {
			if k != "POSTERN_UPSTREAM" {
				rest[k] = v
			}
		}
		if shared == nil {
			shared = rest
		} else if !maps.Equal(shared, rest) {
			t.Errorf("%s's settings differ from %s's beyond the upstreams' order:\n%v\n%v", name, replicas[0], rest, shared)
		}
	}
	seen := map[string]bool{}
	for _, name := range replicas {
		v := acmeVolumes[name]
		if v == "" || seen[v] {
			t.Errorf("%s: no volume of its own at /var/lib/postern/acme (%v)", name, acmeVolumes)
		}
		seen[v] = true
	}

	// HAProxy's servers are exactly the replicas, with PROXY v2 and
	// /readyz on their metrics port.
	metricsPort := strings.TrimPrefix(cf.Services[replicas[0]].Environment["POSTERN_METRICS"], ":")
	servers := haproxyServers(t, "haproxy/replicas.cfg")
	for _, backend := range []string{"postern", "postern_acme"} {
		var names []string
		for _, s := range servers[backend] {
			names = append(names, s.name)
			host, _, _ := strings.Cut(s.addr, ":")
			if host != s.name {
				t.Errorf("backend %s: server %s addresses %s", backend, s.name, s.addr)
			}
			switch backend {
			case "postern":
				if !slices.Contains(s.opts, "send-proxy-v2") || !strings.Contains(strings.Join(s.opts, " "), "check port "+metricsPort) {
					t.Errorf("backend postern: server %s %v lacks send-proxy-v2 or check port %s", s.name, s.opts, metricsPort)
				}
			case "postern_acme":
				if s.addr != s.name+":80" || slices.Contains(s.opts, "send-proxy-v2") {
					t.Errorf("backend postern_acme: server %s %s %v, want port 80 (the image's acme-http) without PROXY", s.name, s.addr, s.opts)
				}
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, replicas) {
			t.Errorf("haproxy backend %s has servers %v, want the replicas %v", backend, names, replicas)
		}
	}

	// Each replica's environment is a configuration postern takes, with
	// the compose file's Redis URL form and key file against a real Redis.
	redis := testkit.StartRedis(t)
	for _, name := range replicas {
		env := cf.Services[name].Environment
		dir := replicaFiles(t)
		var vars []string
		for k, v := range env {
			v = strings.ReplaceAll(v, "/etc/postern", dir)
			switch k {
			case "POSTERN_STATE":
				u, _ := url.Parse(v)
				u.Host = redis.Addr
				v = u.String()
			case "POSTERN_UPSTREAM":
				v = strings.Join(loopbackUpstreams(t, strings.Split(v, ",")), ",")
			}
			vars = append(vars, k+"="+v)
		}
		// Not /var/lib/postern/acme on the test machine.
		vars = append(vars, "POSTERN_ACME_CACHE_LOCAL="+filepath.Join(dir, "acme"))
		checkConfig(t, name, vars, nil)
	}
}

// loopbackUpstreams stands in a closed loopback port for each upstream
// (the tests' network is loopback only; check-config warns that each
// cannot be reached).
func loopbackUpstreams(t *testing.T, ups []string) []string {
	t.Helper()
	var out []string
	for range ups {
		out = append(out, testkit.FreeAddr(t))
	}
	return out
}

// replicaFiles makes what /etc/postern holds for a replica: a users file, the
// sender map and an ACME cache key, and returns the directory.
func replicaFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hash := exec.Command(postern(t), "hash-password")
	hash.Stdin = strings.NewReader("secret\n")
	h, err := hash.Output()
	if err != nil {
		t.Fatalf("postern hash-password: %v", err)
	}
	sender, err := os.ReadFile("config/sender_login_maps")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"users":             "alice@example.org:" + strings.TrimSpace(string(h)) + "\n",
		"sender_login_maps": string(sender),
		// As `openssl rand -hex 32` writes it.
		"acme-cache.key": strings.Repeat("5a", 32) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkConfig runs `postern check-config` (args after it) with only vars
// as POSTERN_* environment and fails unless it says "configuration OK"
// without an error line (the Redis in vars is a real one). Unreachable
// upstreams are warnings there.
func checkConfig(t *testing.T, what string, vars, args []string) {
	t.Helper()
	cmd := exec.Command(postern(t), append([]string{"check-config"}, args...)...)
	cmd.Env = append(cleanEnv(), vars...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Errorf("%s: postern check-config: %v\n%s", what, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "unknown environment variable") ||
			strings.Contains(l, "Redis unreachable") {
			t.Errorf("%s: postern check-config: %s", what, l)
		}
	}
}

// haproxyServer is one `server NAME ADDR OPTIONS...` line.
type haproxyServer struct {
	name, addr string
	opts       []string
}

// haproxyServers returns the server lines of a HAProxy configuration by
// backend.
func haproxyServers(t *testing.T, path string) map[string][]haproxyServer {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string][]haproxyServer{}
	backend := ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			backend = ""
			if f[0] == "backend" && len(f) == 2 {
				backend = f[1]
			}
			continue
		}
		if f[0] == "server" && backend != "" && len(f) >= 3 {
			servers[backend] = append(servers[backend], haproxyServer{name: f[1], addr: f[2], opts: f[3:]})
		}
	}
	return servers
}

// TestHAProxyReplicasConfig runs `haproxy -c` on haproxy/replicas.cfg: it
// must be valid, and warn about nothing but the replicas' names, which
// resolve only on the compose network (init-addr none lets HAProxy start
// without them).
func TestHAProxyReplicasConfig(t *testing.T) {
	haproxy := testkit.RequireTool(t, "haproxy")
	out, err := exec.Command(haproxy, "-c", "-f", "haproxy/replicas.cfg").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Configuration file is valid") {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if (strings.Contains(l, "[WARNING]") || strings.Contains(l, "[ALERT]")) && !strings.Contains(l, "could not resolve address 'postern") {
			t.Errorf("haproxy -c: %s", l)
		}
	}
}

// checkReplicaSettings holds the Kubernetes manifests to the replicas
// set-up: --state on Redis, the ACME cache there with its key from a Secret
// and a writable local copy, HTTP-01 through the Service, several
// upstreams; and runs `postern check-config` on the ConfigMap's file (text,
// decoded in cfg).
func checkReplicaSettings(t *testing.T, text string, cfg map[string]any, pod k8sObject, mounts map[string]k8sObject, ports map[string]int, svc k8sObject) {
	t.Helper()
	if s, _ := cfg["state"].(string); !strings.HasPrefix(s, "redis://") && !strings.HasPrefix(s, "rediss://") {
		t.Errorf("state = %v, want a shared Redis (redis:// or rediss://)", cfg["state"])
	}
	if cfg["acme-cache"] != "redis" {
		t.Errorf("acme-cache = %v, want redis", cfg["acme-cache"])
	}
	if d, _ := cfg["acme-domain"].([]any); len(d) == 0 {
		t.Errorf("acme-domain = %v, want the certificate's names", cfg["acme-domain"])
	}
	if ups := stringList(cfg["upstream"]); len(ups) < 2 || ups[0] == ups[1] {
		t.Errorf("upstream = %v, want several", cfg["upstream"])
	}
	volumes := map[string]k8sObject{}
	for _, v := range pod.get("volumes").([]any) {
		vo := k8sObject(v.(map[string]any))
		volumes[vo.str("name")] = vo
	}
	// The key from a Secret, read-only; the local copy writable (the root
	// filesystem is read-only).
	key, _ := cfg["acme-cache-key-file"].(string)
	if m := mounts[filepath.Dir(key)]; m == nil || volumes[m.str("name")].str("secret", "secretName") == "" || m.get("readOnly") != true {
		t.Errorf("acme-cache-key-file = %q is not in a read-only Secret mount", key)
	}
	local, _ := cfg["acme-cache-local"].(string)
	if m := mounts[local]; m == nil || m.get("readOnly") == true {
		t.Errorf("acme-cache-local = %q is not a writable mount", local)
	}
	// HTTP-01: the Service's port 80 reaches acme-http.
	acmeHTTP, _ := cfg["acme-http"].(string)
	if p, err := strconv.Atoi(strings.TrimPrefix(acmeHTTP, ":")); err != nil || ports["acme-http"] != p {
		t.Errorf("acme-http = %q, container port acme-http = %d", acmeHTTP, ports["acme-http"])
	}
	found := false
	for _, p := range svc.get("spec", "ports").([]any) {
		pm := k8sObject(p.(map[string]any))
		found = found || (pm.num("port") == 80 && pm.str("targetPort") == "acme-http")
	}
	if !found {
		t.Errorf("the Service has no port 80 to acme-http (the CA's HTTP-01 check)")
	}

	if t.Failed() {
		return // check-config would only repeat it
	}
	// The file itself, with its paths on this machine and its Redis a
	// real one.
	dir := replicaFiles(t)
	redis := testkit.StartRedis(t)
	state, _ := cfg["state"].(string)
	u, err := url.Parse(state)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = redis.Addr
	for from, to := range map[string]string{
		fmt.Sprint(cfg["users"]):      filepath.Join(dir, "users"),
		fmt.Sprint(cfg["sender-map"]): filepath.Join(dir, "sender_login_maps"),
		key:                           filepath.Join(dir, "acme-cache.key"),
		local:                         filepath.Join(dir, "acme"),
		state:                         u.String(),
	} {
		text = strings.ReplaceAll(text, strconv.Quote(from), strconv.Quote(to))
	}
	ups := stringList(cfg["upstream"])
	for i, to := range loopbackUpstreams(t, ups) {
		text = strings.ReplaceAll(text, strconv.Quote(ups[i]), strconv.Quote(to))
	}
	var check map[string]any
	if _, err := toml.Decode(text, &check); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "postern.toml")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	checkConfig(t, "ConfigMap postern.toml", nil, []string{"--config", conf})
}

// stringList is a TOML value that should be a list of strings, as one
// (nil for anything else).
func stringList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// envMap turns names into a map with empty values (for envFlagNames).
func envMap(names []string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = ""
	}
	return m
}

// TestReadmeReplicasConfig runs `postern check-config` on the README's
// "Running several replicas" configuration (added to the first run's
// hostname, users and sender map), with its Redis a real one and its
// upstreams closed loopback ports, and holds the section to the files it
// names.
func TestReadmeReplicasConfig(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Running several replicas\n")
	if !ok {
		t.Fatalf("README.md has no section \"Running several replicas\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "\n```toml\n")
	block, _, ok2 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 {
		t.Fatalf("the section has no ```toml block:\n%s", section)
	}
	var cfg map[string]any
	if _, err := toml.Decode(block, &cfg); err != nil {
		t.Fatalf("the README's replica configuration: %v\n%s", err, block)
	}
	var keys []string
	for k := range cfg {
		keys = append(keys, k)
	}
	checkFlagNames(t, "README replica configuration", keys)
	for _, link := range []string{"deploy/haproxy/replicas.cfg", "deploy/docker-compose.replicas.yml", "deploy/k8s/"} {
		if !strings.Contains(section, link) {
			t.Errorf("the section does not name %s", link)
		}
		if _, err := os.Stat(filepath.Join("..", link)); err != nil {
			t.Errorf("the section names %s: %v", link, err)
		}
	}
	// HAProxy's health check asks the port the README gives metrics.
	for _, s := range haproxyServers(t, "haproxy/replicas.cfg")["postern"] {
		if m, _ := cfg["metrics"].(string); !strings.Contains(strings.Join(s.opts, " "), "check port "+strings.TrimPrefix(m, ":")) {
			t.Errorf("haproxy/replicas.cfg checks %s with %v, the README gives metrics = %q", s.name, s.opts, m)
		}
	}

	dir := replicaFiles(t)
	redis := testkit.StartRedis(t)
	state, _ := cfg["state"].(string)
	u, err := url.Parse(state)
	if err != nil || state == "" {
		t.Fatalf("state = %q: %v", state, err)
	}
	u.Host = redis.Addr
	key, _ := cfg["acme-cache-key-file"].(string)
	subst := map[string]string{
		state: u.String(),
		key:   filepath.Join(dir, "acme-cache.key"),
	}
	ups := stringList(cfg["upstream"])
	if len(ups) < 2 {
		t.Errorf("upstream = %v, want several", ups)
	}
	for i, to := range loopbackUpstreams(t, ups) {
		subst[ups[i]] = to
	}
	text := block
	for from, to := range subst {
		if !strings.Contains(text, strconv.Quote(from)) {
			t.Fatalf("%q is not in the README block", from)
		}
		text = strings.ReplaceAll(text, strconv.Quote(from), strconv.Quote(to))
	}
	// The first run's settings that the section keeps (README step 5).
	text = "hostname = \"mail.example.org\"\n" +
		"users = " + strconv.Quote(filepath.Join(dir, "users")) + "\n" +
		"sender-map = " + strconv.Quote(filepath.Join(dir, "sender_login_maps")) + "\n" +
		"acme-cache-local = " + strconv.Quote(filepath.Join(dir, "acme")) + "\n" + text
	conf := filepath.Join(dir, "postern.toml")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	checkConfig(t, "README replica configuration", nil, []string{"--config", conf})
}
