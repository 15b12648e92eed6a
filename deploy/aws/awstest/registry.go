package awstest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ECR's repositories are served by a real Docker Registry v2, Debian's
// docker-registry, started on a loopback port with its storage in a
// temporary folder, and guarded by HTTP basic auth (htpasswd, bcrypt)
// with the one user "AWS" and the password GetAuthorizationToken hands
// out, as ECR's registries are. In front of it the fake puts a proxy of
// its own, whose address is the registry host of every repositoryUri and
// of the proxyEndpoint: it refuses, as ECR does, a push to a repository
// that CreateRepository did not create, and a tag pushed again to an
// IMMUTABLE repository. The Docker Engine reaches 127.0.0.1 registries
// over plain HTTP without being told to.
//
// ECR's answers about images (DescribeImages, BatchGetImage) are read
// from the registry over its HTTP API: the tags of a repository, and each
// tag's manifest with its Docker-Content-Digest. Only the time an image
// was pushed comes from the storage folder (the mtime of its revision
// link), as the API does not tell it.

// RegistryUser is the user name of the registry's basic auth, as ECR's
// authorization tokens decode to "AWS:<password>".
const RegistryUser = "AWS"

// requireEnv makes tests that need Docker or the registry fail rather than
// skip, as executors/docker/dockertest does.
const requireEnv = "SLIPWAY_REQUIRE_DOCKER"

// errNoRegistry is why the registry cannot start on a machine without
// docker-registry.
var errNoRegistry = errors.New("no docker-registry binary (install Debian's docker-registry package)")

// registryBinaries are the names the Docker Registry is installed as:
// Debian's, then upstream's.
var registryBinaries = []string{"docker-registry", "registry"}

// registry is the Docker Registry behind the fake ECR and the proxy in
// front of it.
type registry struct {
	f        *Fake
	proxy    *httptest.Server
	password string

	mu       sync.Mutex // guards what follows; never held with f.mu
	started  bool
	startErr error
	closed   bool
	dir      string
	backend  string // "127.0.0.1:PORT" of docker-registry
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     *tailBuffer
	rp       *httputil.ReverseProxy
	client   *http.Client

	// pushed is when each manifest was first pushed, by "name@digest":
	// the registry rewrites a manifest's files when it is pushed again,
	// but ECR keeps an image's first imagePushedAt.
	pushed map[string]time.Time
}

// newRegistry starts the proxy; docker-registry starts on first use.
func newRegistry(f *Fake) *registry {
	g := &registry{f: f, password: randomHex(32), client: &http.Client{Timeout: 30 * time.Second}, pushed: map[string]time.Time{}}
	g.proxy = httptest.NewServer(http.HandlerFunc(g.serveProxy))
	return g
}

// host is "127.0.0.1:PORT", the registry host of the fake's repositories.
func (g *registry) host() string {
	return strings.TrimPrefix(g.proxy.URL, "http://")
}

// ensureStarted starts docker-registry unless it already runs, and
// reports why it cannot run.
func (g *registry) ensureStarted() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("the fake is closed")
	}
	if g.started {
		return g.startErr
	}
	g.started = true
	g.startErr = g.start()
	return g.startErr
}

// start runs docker-registry. g.mu must be held.
func (g *registry) start() error {
	var bin string
	for _, name := range registryBinaries {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return errNoRegistry
	}
	dir, err := os.MkdirTemp("", "awstest-registry-")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	g.dir = dir
	hash, err := bcrypt.GenerateFromPassword([]byte(g.password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(RegistryUser+":"+string(hash)+"\n"), 0o600); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	// The port is chosen by listening and closing, so another process may
	// take it before docker-registry does: then it exits and we try again.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		if lastErr = g.run(bin, port); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// run starts docker-registry on port and waits until it answers. g.mu
// must be held.
func (g *registry) run(bin string, port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: awstest
    path: %s
`, filepath.Join(g.dir, "data"), addr, randomHex(16), filepath.Join(g.dir, "htpasswd"))
	cfg := filepath.Join(g.dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	g.logs = &tailBuffer{max: 8 << 10}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("registry: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	// This goroutine ends when the process does: close kills it.
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("registry: %s exited at start: %s", bin, g.logs.String())
		default:
		}
		resp, err := g.client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("registry: %s did not answer on %s within 10s: %s", bin, addr, g.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.cmd, g.exited, g.backend = cmd, exited, addr
	target := &url.URL{Scheme: "http", Host: addr}
	g.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The registry writes its upload locations for the host it
			// was asked for: the proxy's, where the client must come back.
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodPut || resp.StatusCode != http.StatusCreated {
				return nil
			}
			if name, kind, _ := registryPath(resp.Request.URL.Path); kind == "manifests" {
				if digest := resp.Header.Get("Docker-Content-Digest"); digest != "" {
					g.mu.Lock()
					if _, ok := g.pushed[name+"@"+digest]; !ok {
						g.pushed[name+"@"+digest] = time.Now()
					}
					g.mu.Unlock()
				}
				g.f.mu.Lock()
				g.f.notifyLocked()
				g.f.mu.Unlock()
			}
			return nil
		},
	}
	return nil
}

// close stops docker-registry and the proxy and removes the storage.
func (g *registry) close() {
	g.proxy.CloseClientConnections()
	g.proxy.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.cmd != nil {
		g.cmd.Process.Kill()
		<-g.exited
		g.cmd = nil
	}
	if g.dir != "" {
		os.RemoveAll(g.dir)
	}
}

// registryError answers a Docker Registry API error as ECR words it.
func registryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

// serveProxy forwards a Docker Registry API request to docker-registry,
// after refusing what ECR refuses.
func (g *registry) serveProxy(w http.ResponseWriter, r *http.Request) {
	if err := g.ensureStarted(); err != nil {
		registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "awstest: "+err.Error())
		return
	}
	name, kind, ref := registryPath(r.URL.Path)
	// Unauthenticated requests go through, for the registry's 401.
	if name != "" && r.Header.Get("Authorization") != "" {
		g.f.mu.Lock()
		repo := g.f.repos[name]
		g.f.mu.Unlock()
		if repo == nil {
			registryError(w, http.StatusNotFound, "NAME_UNKNOWN",
				fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", name, AccountID))
			return
		}
		if kind == "manifests" && r.Method == http.MethodPut && !strings.HasPrefix(ref, "sha256:") && repo.mutability == "IMMUTABLE" {
			if _, _, digest, err := g.manifest(r.Context(), name, ref); err == nil && digest != "" {
				registryError(w, http.StatusBadRequest, "TAG_INVALID",
					fmt.Sprintf("The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", ref, name))
				return
			}
		}
	}
	g.mu.Lock()
	rp := g.rp
	g.mu.Unlock()
	if rp == nil {
		registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "awstest: the fake is closed")
		return
	}
	rp.ServeHTTP(w, r)
}

// registryPath splits a Docker Registry API path, "/v2/<name>/manifests/<ref>",
// into the repository's name, the kind of resource and its reference.
func registryPath(p string) (name, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"manifests", "blobs", "tags"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i > 0 {
			return rest[:i], k, rest[i+len(k)+2:]
		}
	}
	return "", "", ""
}

// manifestTypes are the manifests the fake asks the registry for: Docker's
// and OCI's, single images and lists.
var manifestTypes = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
}

// do sends a request to docker-registry itself, as the user AWS.
func (g *registry) do(ctx context.Context, method, path string, header http.Header) (*http.Response, error) {
	g.mu.Lock()
	backend := g.backend
	g.mu.Unlock()
	if backend == "" {
		return nil, errors.New("registry: not running")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+backend+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.SetBasicAuth(RegistryUser, g.password)
	return g.client.Do(req)
}

// tags lists the tags of repository name; nil when nothing was pushed to
// it.
func (g *registry) tags(ctx context.Context, name string) ([]string, error) {
	resp, err := g.do(ctx, http.MethodGet, "/v2/"+name+"/tags/list", nil)
	if err != nil {
		return nil, fmt.Errorf("registry: tags of %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("registry: tags of %s: %s", name, resp.Status)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("registry: tags of %s: %w", name, err)
	}
	slices.Sort(list.Tags)
	return list.Tags, nil
}

// manifest fetches the manifest of name at ref, a tag or a digest; digest
// is "" when there is none.
func (g *registry) manifest(ctx context.Context, name, ref string) (body []byte, mediaType, digest string, err error) {
	resp, err := g.do(ctx, http.MethodGet, "/v2/"+name+"/manifests/"+ref, http.Header{"Accept": manifestTypes})
	if err != nil {
		return nil, "", "", fmt.Errorf("registry: manifest %s:%s: %w", name, ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, "", "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", fmt.Errorf("registry: manifest %s:%s: %s", name, ref, resp.Status)
	}
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", "", fmt.Errorf("registry: manifest %s:%s: %w", name, ref, err)
	}
	mediaType = resp.Header.Get("Content-Type")
	digest = resp.Header.Get("Docker-Content-Digest")
	if digest == "" {
		sum := sha256.Sum256(body)
		digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return body, mediaType, digest, nil
}

// Image is an image in a repository of the fake ECR, as the registry
// holds it.
type Image struct {
	Repository string
	Digest     string   // "sha256:..."
	Tags       []string // sorted
	MediaType  string   // of its manifest
	SizeBytes  int64    // its layers' compressed sizes, as ECR counts
	PushedAt   time.Time
	Manifest   string // its JSON
}

// images lists the tagged images of repository name, one per digest, in
// the order they were pushed.
func (g *registry) images(ctx context.Context, name string) ([]Image, error) {
	tags, err := g.tags(ctx, name)
	if err != nil {
		return nil, err
	}
	byDigest := map[string]*Image{}
	var out []*Image
	for _, tag := range tags {
		body, mediaType, digest, err := g.manifest(ctx, name, tag)
		if err != nil {
			return nil, err
		}
		if digest == "" {
			continue // untagged meanwhile
		}
		img := byDigest[digest]
		if img == nil {
			img = &Image{Repository: name, Digest: digest, MediaType: mediaType, Manifest: string(body),
				SizeBytes: manifestSize(body), PushedAt: g.pushedAt(name, digest)}
			byDigest[digest] = img
			out = append(out, img)
		}
		img.Tags = append(img.Tags, tag)
	}
	slices.SortStableFunc(out, func(a, b *Image) int { return a.PushedAt.Compare(b.PushedAt) })
	images := make([]Image, len(out))
	for i, img := range out {
		images[i] = *img
	}
	return images, nil
}

// image finds the image of name at a tag or digest; ok is false if there
// is none.
func (g *registry) image(ctx context.Context, name, ref string) (img Image, ok bool, err error) {
	body, mediaType, digest, err := g.manifest(ctx, name, ref)
	if err != nil || digest == "" {
		return Image{}, false, err
	}
	all, err := g.images(ctx, name)
	if err != nil {
		return Image{}, false, err
	}
	for _, i := range all {
		if i.Digest == digest {
			return i, true, nil
		}
	}
	// An untagged image, found by its digest.
	return Image{Repository: name, Digest: digest, MediaType: mediaType, Manifest: string(body),
		SizeBytes: manifestSize(body), PushedAt: g.pushedAt(name, digest)}, true, nil
}

// pushedAt is when the manifest digest was first pushed to name: as the
// proxy saw it, or else (an image pushed to the registry directly) the
// time its revision link was written in the registry's storage.
func (g *registry) pushedAt(name, digest string) time.Time {
	g.mu.Lock()
	at, ok := g.pushed[name+"@"+digest]
	g.mu.Unlock()
	if ok {
		return at
	}
	algo, hexDigest, _ := strings.Cut(digest, ":")
	p := filepath.Join(g.dir, "data", "docker", "registry", "v2", "repositories", filepath.FromSlash(name),
		"_manifests", "revisions", algo, hexDigest, "link")
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// manifestSize adds up the sizes of a manifest's layers, or of the
// manifests of a list.
func manifestSize(body []byte) int64 {
	var m struct {
		Layers    []struct{ Size int64 } `json:"layers"`
		Manifests []struct{ Size int64 } `json:"manifests"`
	}
	if json.Unmarshal(body, &m) != nil {
		return 0
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	for _, l := range m.Manifests {
		n += l.Size
	}
	return n
}

// RequireRegistry starts the Docker Registry behind the fake ECR. Where
// docker-registry is not installed it skips the test with the reason, or
// fails it when SLIPWAY_REQUIRE_DOCKER=1. Without it, ECR still keeps its
// repositories but holds no image.
func (f *Fake) RequireRegistry() {
	f.tb.Helper()
	err := f.reg.ensureStarted()
	switch {
	case err == nil:
	case errors.Is(err, errNoRegistry) && os.Getenv(requireEnv) == "1":
		f.tb.Fatalf("awstest: %v (%s=1 requires it)", err, requireEnv)
	case errors.Is(err, errNoRegistry):
		f.tb.Skipf("skipping: awstest: %v (set %s=1 to fail instead)", err, requireEnv)
	default:
		f.tb.Fatalf("awstest: %v", err)
	}
}

// RegistryHost is "127.0.0.1:PORT", the registry of every repositoryUri
// ("127.0.0.1:PORT/backend") and, after "http://", of the proxyEndpoint of
// GetAuthorizationToken.
func (f *Fake) RegistryHost() string { return f.reg.host() }

// RegistryPassword is the password of RegistryUser at the registry, the
// one GetAuthorizationToken's token carries.
func (f *Fake) RegistryPassword() string { return f.reg.password }

// Images lists the images of repository, one per digest, in the order
// pushed; nil when the repository holds none or the registry is not
// installed.
func (f *Fake) Images(repository string) []Image {
	f.tb.Helper()
	if f.reg.ensureStarted() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	images, err := f.reg.images(ctx, repository)
	if err != nil {
		f.tb.Errorf("awstest: Images(%q): %v", repository, err)
	}
	return images
}

// PushImage pushes a tiny image (one layer with one file that names
// repository and tag, so that each tag has its own digest) to repository
// at tag, through the registry API as the Docker Engine would, and
// returns its digest. The repository must exist (AddRepository or
// CreateRepository). It needs docker-registry, as RequireRegistry does,
// and no Docker Engine.
func (f *Fake) PushImage(repository, tag string) (digest string) {
	f.tb.Helper()
	f.RequireRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	digest, err := f.reg.push(ctx, repository, tag)
	if err != nil {
		f.tb.Fatalf("awstest: PushImage(%q, %q): %v", repository, tag, err)
	}
	return digest
}

// push uploads a tiny image through the proxy.
func (g *registry) push(ctx context.Context, name, tag string) (string, error) {
	content := []byte(fmt.Sprintf("awstest image %s:%s\n", name, tag))
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "awstest-image", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)})
	tw.Write(content)
	tw.Close()
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	zw.Write(layerTar.Bytes())
	zw.Close()
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{sha256Digest(layerTar.Bytes())}},
		"history": []map[string]string{{"created_by": "awstest.PushImage"}},
	})
	for _, blob := range [][]byte{layer.Bytes(), config} {
		if err := g.uploadBlob(ctx, name, blob); err != nil {
			return "", err
		}
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifestTypes[0],
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": sha256Digest(config)},
		"layers":        []map[string]any{{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.Len(), "digest": sha256Digest(layer.Bytes())}},
	})
	resp, err := g.proxyDo(ctx, http.MethodPut, g.proxy.URL+"/v2/"+name+"/manifests/"+tag, manifestTypes[0], manifest)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("put manifest: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return sha256Digest(manifest), nil
}

// uploadBlob uploads blob to name in one PUT, unless it is there.
func (g *registry) uploadBlob(ctx context.Context, name string, blob []byte) error {
	digest := sha256Digest(blob)
	resp, err := g.proxyDo(ctx, http.MethodPost, g.proxy.URL+"/v2/"+name+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	loc = resp.Request.URL.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	resp, err = g.proxyDo(ctx, http.MethodPut, loc.String(), "application/octet-stream", blob)
	if err != nil {
		return err
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload blob: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// proxyDo sends a request to the proxy as the user AWS.
func (g *registry) proxyDo(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(RegistryUser, g.password)
	return g.client.Do(req)
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it, for the registry's
// output in an error.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
