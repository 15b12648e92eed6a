package awstest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// repository is an ECR repository.
type repository struct {
	name       string
	created    time.Time
	mutability string // MUTABLE or IMMUTABLE
	scanOnPush bool
}

// Repository is an ECR repository of the fake.
type Repository struct {
	Name          string
	ARN           string
	URI           string // "127.0.0.1:PORT/name": where to push
	TagMutability string // "MUTABLE" or "IMMUTABLE"
	CreatedAt     time.Time
}

// AddRepository creates a MUTABLE repository as CreateRepository would,
// unless it exists, and returns its URI.
func (f *Fake) AddRepository(name string) string {
	f.tb.Helper()
	if !repositoryName.MatchString(name) || len(name) < 2 || len(name) > 256 {
		f.tb.Fatalf("awstest: AddRepository: %q is not a valid repository name", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repos[name] == nil {
		f.repos[name] = &repository{name: name, created: time.Now(), mutability: "MUTABLE"}
		f.notifyLocked()
	}
	return f.RegistryHost() + "/" + name
}

// Repositories returns the repositories, sorted by name.
func (f *Fake) Repositories() []Repository {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Repository
	for _, r := range f.sortedReposLocked() {
		out = append(out, Repository{Name: r.name, ARN: f.repositoryARN(r.name), URI: f.RegistryHost() + "/" + r.name,
			TagMutability: r.mutability, CreatedAt: r.created})
	}
	return out
}

func (f *Fake) sortedReposLocked() []*repository {
	var repos []*repository
	for _, r := range f.repos {
		repos = append(repos, r)
	}
	slices.SortFunc(repos, func(a, b *repository) int { return strings.Compare(a.name, b.name) })
	return repos
}

func (f *Fake) repositoryARN(name string) string {
	return fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", f.region, AccountID, name)
}

var repositoryName = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// The shapes of ECR's JSON, as the SDK reads them.
type (
	ecrRepository struct {
		RepositoryArn              string            `json:"repositoryArn"`
		RegistryID                 string            `json:"registryId"`
		RepositoryName             string            `json:"repositoryName"`
		RepositoryURI              string            `json:"repositoryUri"`
		CreatedAt                  float64           `json:"createdAt"`
		ImageTagMutability         string            `json:"imageTagMutability"`
		ImageScanningConfiguration map[string]bool   `json:"imageScanningConfiguration"`
		EncryptionConfiguration    map[string]string `json:"encryptionConfiguration"`
	}
	ecrImageID struct {
		ImageDigest string `json:"imageDigest,omitempty"`
		ImageTag    string `json:"imageTag,omitempty"`
	}
	ecrImageDetail struct {
		RegistryID             string   `json:"registryId"`
		RepositoryName         string   `json:"repositoryName"`
		ImageDigest            string   `json:"imageDigest"`
		ImageTags              []string `json:"imageTags,omitempty"`
		ImageSizeInBytes       int64    `json:"imageSizeInBytes"`
		ImagePushedAt          float64  `json:"imagePushedAt"`
		ImageManifestMediaType string   `json:"imageManifestMediaType"`
		ArtifactMediaType      string   `json:"artifactMediaType,omitempty"`
	}
	ecrImage struct {
		RegistryID             string     `json:"registryId"`
		RepositoryName         string     `json:"repositoryName"`
		ImageID                ecrImageID `json:"imageId"`
		ImageManifest          string     `json:"imageManifest"`
		ImageManifestMediaType string     `json:"imageManifestMediaType"`
	}
	ecrImageFailure struct {
		ImageID       ecrImageID `json:"imageId"`
		FailureCode   string     `json:"failureCode"`
		FailureReason string     `json:"failureReason"`
	}
)

func (f *Fake) ecrRepository(r *repository) ecrRepository {
	return ecrRepository{
		RepositoryArn:              f.repositoryARN(r.name),
		RegistryID:                 AccountID,
		RepositoryName:             r.name,
		RepositoryURI:              f.RegistryHost() + "/" + r.name,
		CreatedAt:                  epochSeconds(r.created),
		ImageTagMutability:         r.mutability,
		ImageScanningConfiguration: map[string]bool{"scanOnPush": r.scanOnPush},
		EncryptionConfiguration:    map[string]string{"encryptionType": "AES256"},
	}
}

const ecrContentType = "application/x-amz-json-1.1"

func (f *Fake) serveECR(w http.ResponseWriter, req *request) *apiError {
	var out any
	var aerr *apiError
	switch req.op {
	case "GetAuthorizationToken":
		out, aerr = f.getAuthorizationToken(req)
	case "CreateRepository":
		out, aerr = f.createRepository(req)
	case "DescribeRepositories":
		out, aerr = f.describeRepositories(req)
	case "DescribeImages":
		out, aerr = f.describeImages(req)
	case "BatchGetImage":
		out, aerr = f.batchGetImage(req)
	default:
		return notModeled(ECR, req.op)
	}
	if aerr != nil {
		return aerr
	}
	writeJSON(w, req, http.StatusOK, ecrContentType, out)
	return nil
}

// decodeECR decodes req's body into in.
func decodeECR(req *request, in any) *apiError {
	if len(req.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.body, in); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: err.Error()}
	}
	return nil
}

func invalidECRParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidParameterException", message: fmt.Sprintf(format, args...)}
}

func repositoryNotFound(name, registryID string) *apiError {
	if registryID == "" {
		registryID = AccountID
	}
	return &apiError{status: http.StatusBadRequest, code: "RepositoryNotFoundException",
		message: fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", name, registryID)}
}

func (f *Fake) getAuthorizationToken(req *request) (any, *apiError) {
	// The registry starts here if it has not yet, so that a docker login
	// that follows finds it; without docker-registry the token is still
	// answered, and pushes are refused by the proxy with the reason.
	if err := f.reg.ensureStarted(); err != nil && err != errNoRegistry {
		f.logf("GetAuthorizationToken: %v", err)
	}
	token := base64.StdEncoding.EncodeToString([]byte(RegistryUser + ":" + f.reg.password))
	return map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": token,
		"expiresAt":          epochSeconds(req.at.Add(12 * time.Hour)),
		"proxyEndpoint":      "http://" + f.RegistryHost(),
	}}}, nil
}

func (f *Fake) createRepository(req *request) (any, *apiError) {
	var in struct {
		RepositoryName             string          `json:"repositoryName"`
		ImageTagMutability         string          `json:"imageTagMutability"`
		ImageScanningConfiguration map[string]bool `json:"imageScanningConfiguration"`
		RegistryID                 string          `json:"registryId"`
	}
	if aerr := decodeECR(req, &in); aerr != nil {
		return nil, aerr
	}
	name := in.RepositoryName
	if len(name) < 2 || len(name) > 256 || !repositoryName.MatchString(name) {
		return nil, invalidECRParameter("Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''")
	}
	mutability := in.ImageTagMutability
	switch mutability {
	case "":
		mutability = "MUTABLE"
	case "MUTABLE", "IMMUTABLE":
	default:
		return nil, invalidECRParameter("Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE]'")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repos[name] != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "RepositoryAlreadyExistsException",
			message: fmt.Sprintf("The repository with name '%s' already exists in the registry with id '%s'", name, AccountID)}
	}
	r := &repository{name: name, created: req.at, mutability: mutability, scanOnPush: in.ImageScanningConfiguration["scanOnPush"]}
	f.repos[name] = r
	return map[string]any{"repository": f.ecrRepository(r)}, nil
}

func (f *Fake) describeRepositories(req *request) (any, *apiError) {
	var in struct {
		RegistryID      string   `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
		NextToken       string   `json:"nextToken"`
		MaxResults      int      `json:"maxResults"`
	}
	if aerr := decodeECR(req, &in); aerr != nil {
		return nil, aerr
	}
	if in.NextToken != "" && len(in.RepositoryNames) > 0 {
		return nil, invalidECRParameter("Invalid parameter at 'nextToken' failed to satisfy constraint: 'nextToken is not supported with repositoryNames'")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var repos []*repository
	if len(in.RepositoryNames) > 0 {
		for _, name := range in.RepositoryNames {
			r := f.repos[name]
			if r == nil || (in.RegistryID != "" && in.RegistryID != AccountID) {
				return nil, repositoryNotFound(name, in.RegistryID)
			}
			repos = append(repos, r)
		}
	} else if in.RegistryID == "" || in.RegistryID == AccountID {
		repos = f.sortedReposLocked()
	}
	repos, next, aerr := ecrPage(repos, in.NextToken, in.MaxResults)
	if aerr != nil {
		return nil, aerr
	}
	list := []ecrRepository{}
	for _, r := range repos {
		list = append(list, f.ecrRepository(r))
	}
	out := map[string]any{"repositories": list}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

// repoForImages checks that repository name exists and that the registry
// can answer for it; ok is false when docker-registry is not installed, so
// that the repository holds no image.
func (f *Fake) repoForImages(name, registryID string) (ok bool, aerr *apiError) {
	f.mu.Lock()
	r := f.repos[name]
	f.mu.Unlock()
	if r == nil || (registryID != "" && registryID != AccountID) {
		return false, repositoryNotFound(name, registryID)
	}
	switch err := f.reg.ensureStarted(); {
	case err == errNoRegistry:
		return false, nil
	case err != nil:
		f.logf("%v", err)
		return false, &apiError{status: http.StatusInternalServerError, code: "ServerException", message: "awstest: " + err.Error()}
	}
	return true, nil
}

func (f *Fake) imageDetail(img Image) ecrImageDetail {
	return ecrImageDetail{
		RegistryID:             AccountID,
		RepositoryName:         img.Repository,
		ImageDigest:            img.Digest,
		ImageTags:              img.Tags,
		ImageSizeInBytes:       img.SizeBytes,
		ImagePushedAt:          epochSeconds(img.PushedAt),
		ImageManifestMediaType: img.MediaType,
		ArtifactMediaType:      configMediaType([]byte(img.Manifest)),
	}
}

// configMediaType is the media type of a manifest's config, which ECR
// answers as the image's artifactMediaType.
func configMediaType(manifest []byte) string {
	var m struct {
		Config struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	json.Unmarshal(manifest, &m)
	return m.Config.MediaType
}

// imageNotFound is ECR's words for an imageId that is not in repository.
func imageNotFound(id ecrImageID, repository string) *apiError {
	digest, tag := "null", "null"
	if id.ImageDigest != "" {
		digest = "'" + id.ImageDigest + "'"
	}
	if id.ImageTag != "" {
		tag = "'" + id.ImageTag + "'"
	}
	return &apiError{status: http.StatusBadRequest, code: "ImageNotFoundException",
		message: fmt.Sprintf("The image with imageId {imageDigest:%s, imageTag:%s} does not exist within the repository with name '%s' in the registry with id '%s'",
			digest, tag, repository, AccountID)}
}

// findImage finds the image that id names in repository: by tag, by
// digest, or by both when they agree.
func (f *Fake) findImage(ctx context.Context, repository string, id ecrImageID) (Image, bool, error) {
	ref := id.ImageTag
	if ref == "" {
		ref = id.ImageDigest
	}
	if ref == "" {
		return Image{}, false, nil
	}
	img, ok, err := f.reg.image(ctx, repository, ref)
	if err != nil || !ok {
		return Image{}, false, err
	}
	if id.ImageDigest != "" && img.Digest != id.ImageDigest {
		return Image{}, false, nil
	}
	return img, true, nil
}

func (f *Fake) describeImages(req *request) (any, *apiError) {
	var in struct {
		RegistryID     string       `json:"registryId"`
		RepositoryName string       `json:"repositoryName"`
		ImageIDs       []ecrImageID `json:"imageIds"`
		NextToken      string       `json:"nextToken"`
		MaxResults     int          `json:"maxResults"`
		Filter         struct {
			TagStatus string `json:"tagStatus"`
		} `json:"filter"`
	}
	if aerr := decodeECR(req, &in); aerr != nil {
		return nil, aerr
	}
	if in.NextToken != "" && len(in.ImageIDs) > 0 {
		return nil, invalidECRParameter("Invalid parameter at 'nextToken' failed to satisfy constraint: 'nextToken is not supported with imageIds'")
	}
	ok, aerr := f.repoForImages(in.RepositoryName, in.RegistryID)
	if aerr != nil {
		return nil, aerr
	}
	ctx := req.r.Context()
	details := []ecrImageDetail{}
	var images []Image
	if len(in.ImageIDs) > 0 {
		for _, id := range in.ImageIDs {
			var img Image
			found := false
			if ok {
				var err error
				if img, found, err = f.findImage(ctx, in.RepositoryName, id); err != nil {
					return nil, &apiError{status: http.StatusInternalServerError, code: "ServerException", message: "awstest: " + err.Error()}
				}
			}
			if !found {
				return nil, imageNotFound(id, in.RepositoryName)
			}
			if !slices.ContainsFunc(images, func(i Image) bool { return i.Digest == img.Digest }) {
				images = append(images, img)
			}
		}
	} else if ok && in.Filter.TagStatus != "UNTAGGED" {
		// Untagged images are not listed: the registry's API lists tags,
		// not manifests.
		var err error
		if images, err = f.reg.images(ctx, in.RepositoryName); err != nil {
			return nil, &apiError{status: http.StatusInternalServerError, code: "ServerException", message: "awstest: " + err.Error()}
		}
	}
	images, next, aerr := ecrPage(images, in.NextToken, in.MaxResults)
	if aerr != nil {
		return nil, aerr
	}
	for _, img := range images {
		details = append(details, f.imageDetail(img))
	}
	out := map[string]any{"imageDetails": details}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (f *Fake) batchGetImage(req *request) (any, *apiError) {
	var in struct {
		RegistryID     string       `json:"registryId"`
		RepositoryName string       `json:"repositoryName"`
		ImageIDs       []ecrImageID `json:"imageIds"`
	}
	if aerr := decodeECR(req, &in); aerr != nil {
		return nil, aerr
	}
	if len(in.ImageIDs) == 0 || len(in.ImageIDs) > 100 {
		return nil, invalidECRParameter("Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length less than or equal to 100 and greater than or equal to 1'")
	}
	ok, aerr := f.repoForImages(in.RepositoryName, in.RegistryID)
	if aerr != nil {
		return nil, aerr
	}
	images := []ecrImage{}
	failures := []ecrImageFailure{}
	for _, id := range in.ImageIDs {
		var img Image
		found := false
		if ok {
			var err error
			if img, found, err = f.findImage(req.r.Context(), in.RepositoryName, id); err != nil {
				return nil, &apiError{status: http.StatusInternalServerError, code: "ServerException", message: "awstest: " + err.Error()}
			}
		}
		if !found {
			failures = append(failures, ecrImageFailure{ImageID: id, FailureCode: "ImageNotFound", FailureReason: "Requested image not found"})
			continue
		}
		images = append(images, ecrImage{
			RegistryID: AccountID, RepositoryName: in.RepositoryName,
			ImageID:       ecrImageID{ImageDigest: img.Digest, ImageTag: id.ImageTag},
			ImageManifest: img.Manifest, ImageManifestMediaType: img.MediaType,
		})
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

// page returns the page of items that token starts, at most n long (def
// when n is 0), and the token of the next page, "" at the end.
// Tokens are opaque to clients, as AWS's are; ok is false for a token the
// fake did not hand out.
func page[T any](items []T, token string, n, def int) (_ []T, next string, ok bool) {
	start := 0
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		n, err2 := strconv.Atoi(string(raw))
		if err != nil || err2 != nil || n < 0 || n > len(items) {
			return nil, "", false
		}
		start = n
	}
	if n <= 0 {
		n = def
	}
	end := min(start+n, len(items))
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return items[start:end], next, true
}

// ecrPage is page with ECR's refusals.
func ecrPage[T any](items []T, token string, max int) ([]T, string, *apiError) {
	if max < 0 || max > 1000 {
		return nil, "", invalidECRParameter("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to 1000'")
	}
	items, next, ok := page(items, token, max, 100)
	if !ok {
		return nil, "", invalidECRParameter("Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'")
	}
	return items, next, nil
}
