package awstest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Lambda update, as the fake plays it: UpdateFunctionCode answers at
// once with LastUpdateStatus InProgress and the new code; until the update
// time has passed, UpdateFunctionCode and PublishVersion are refused with
// ResourceConflictException, as Lambda refuses them. Then the update is
// Successful, or, for an image that FailLambdaImage named, Failed with its
// LastUpdateStatusReason and the function's previous code back in place.
//
// Image URIs of the fake's registry are checked there: an image that is
// not pushed is refused at once with InvalidParameterValueException, and
// the image's digest becomes its CodeSha256 and ResolvedImageUri. Other
// image URIs (a test's "123456789012.dkr.ecr...", on a machine without
// docker-registry) are taken as they are, with a digest made up from the
// URI.

const lambdaPrefix = "/2015-03-31/functions"

// function is a Lambda function.
type function struct {
	name        string
	packageType string // "Image" or "Zip"
	created     time.Time

	code         lambdaCode // $LATEST's
	previousCode lambdaCode // during an update, for a failure to put back
	lastModified time.Time
	revision     string

	state            string // "Active"
	lastUpdateStatus string // "Successful", "InProgress", "Failed"
	lastUpdateReason string
	lastUpdateCode   string

	versions []*functionVersion
	aliases  map[string]*alias
}

type lambdaCode struct {
	imageURI         string
	resolvedImageURI string
	sha256           string
	size             int64
}

type functionVersion struct {
	version      string
	code         lambdaCode
	description  string
	lastModified time.Time
	revision     string
}

type alias struct {
	name        string
	version     string
	description string
	revision    string
	weights     map[string]float64
}

// LambdaFunction is the state of a function.
type LambdaFunction struct {
	Name        string
	ARN         string
	PackageType string // "Image" or "Zip"
	ImageURI    string // $LATEST's image, for an Image function
	CodeSha256  string // $LATEST's
	// State is "Active"; LastUpdateStatus is "Successful", "InProgress"
	// or "Failed", with the reason of a failure.
	State                      string
	LastUpdateStatus           string
	LastUpdateStatusReason     string
	LastUpdateStatusReasonCode string
	RevisionID                 string
	Versions                   []LambdaVersion   // published, oldest first
	Aliases                    map[string]string // alias name → version
}

// LambdaVersion is a published version of a function and the code it
// pins.
type LambdaVersion struct {
	Version     string // "1", "2"...
	ImageURI    string
	CodeSha256  string
	Description string
	Published   time.Time
}

// AddFunction creates an Image function with imageURI as its code,
// Active, its last update Successful, with no version published, as a
// test's starting point, and returns its ARN.
func (f *Fake) AddFunction(name, imageURI string) string {
	f.tb.Helper()
	code, aerr := f.imageCode(context.Background(), imageURI)
	if aerr != nil {
		f.tb.Fatalf("awstest: AddFunction(%q, %q): %v", name, imageURI, aerr)
	}
	return f.addFunction(name, "Image", code)
}

// AddZipFunction creates a Zip function (runtime provided.al2023) with
// the archive zipFile as its code, as AddFunction does, and returns its
// ARN.
func (f *Fake) AddZipFunction(name string, zipFile []byte) string {
	f.tb.Helper()
	code, aerr := zipCode(zipFile)
	if aerr != nil {
		f.tb.Fatalf("awstest: AddZipFunction(%q): %v", name, aerr)
	}
	return f.addFunction(name, "Zip", code)
}

func (f *Fake) addFunction(name, packageType string, code lambdaCode) string {
	f.tb.Helper()
	if !functionName.MatchString(name) {
		f.tb.Fatalf("awstest: %q is not a function name", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.functions[name] != nil {
		f.tb.Fatalf("awstest: function %q exists", name)
	}
	now := time.Now()
	f.functions[name] = &function{
		name: name, packageType: packageType, created: now,
		code: code, lastModified: now, revision: f.uuidLocked(),
		state: "Active", lastUpdateStatus: "Successful",
		aliases: map[string]*alias{},
	}
	f.notifyLocked()
	return f.functionARN(name, "")
}

// FailLambdaImage makes every update to imageURI fail after its
// InProgress time, with reason as its LastUpdateStatusReason and
// InvalidImage as its LastUpdateStatusReasonCode.
func (f *Fake) FailLambdaImage(imageURI, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lambdaFailures[imageURI] = reason
}

// LambdaFunction returns the state of function name; the zero
// LambdaFunction if there is none.
func (f *Fake) LambdaFunction(name string) LambdaFunction {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := f.functions[name]
	if fn == nil {
		return LambdaFunction{}
	}
	out := LambdaFunction{
		Name: fn.name, ARN: f.functionARN(fn.name, ""), PackageType: fn.packageType,
		ImageURI: fn.code.imageURI, CodeSha256: fn.code.sha256,
		State: fn.state, LastUpdateStatus: fn.lastUpdateStatus,
		LastUpdateStatusReason: fn.lastUpdateReason, LastUpdateStatusReasonCode: fn.lastUpdateCode,
		RevisionID: fn.revision, Aliases: map[string]string{},
	}
	for _, v := range fn.versions {
		out.Versions = append(out.Versions, LambdaVersion{Version: v.version, ImageURI: v.code.imageURI,
			CodeSha256: v.code.sha256, Description: v.description, Published: v.lastModified})
	}
	for n, a := range fn.aliases {
		out.Aliases[n] = a.version
	}
	return out
}

var (
	functionName = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)
	aliasName    = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)
	functionRef  = regexp.MustCompile(`^(?:arn:aws:lambda:([a-z0-9-]+):)?(?:(\d{12}):function:)?([a-zA-Z0-9-_]+)(?::(\$LATEST|[a-zA-Z0-9-_]+))?$`)
)

func (f *Fake) functionARN(name, qualifier string) string {
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", f.region, AccountID, name)
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

// imageCode checks imageURI and resolves its digest.
func (f *Fake) imageCode(ctx context.Context, imageURI string) (lambdaCode, *apiError) {
	host, rest, _ := strings.Cut(imageURI, "/")
	if host == f.RegistryHost() && f.reg.ensureStarted() == nil {
		repo, ref := rest, "latest"
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			repo, ref = rest[:i], rest[i+1:]
		} else if i := strings.LastIndex(rest, ":"); i >= 0 {
			repo, ref = rest[:i], rest[i+1:]
		}
		_, _, digest, err := f.reg.manifest(ctx, repo, ref)
		if err != nil {
			return lambdaCode{}, &apiError{status: http.StatusInternalServerError, code: "ServiceException", message: "awstest: " + err.Error()}
		}
		if digest == "" {
			return lambdaCode{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameterValueException",
				message: fmt.Sprintf("Source image %s does not exist. Provide a valid source image.", imageURI)}
		}
		return lambdaCode{imageURI: imageURI, resolvedImageURI: host + "/" + repo + "@" + digest,
			sha256: strings.TrimPrefix(digest, "sha256:")}, nil
	}
	if imageURI == "" || strings.ContainsAny(imageURI, " \t\n") {
		return lambdaCode{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameterValueException",
			message: fmt.Sprintf("Source image %s is not valid. Provide a valid source image.", imageURI)}
	}
	sum := sha256.Sum256([]byte(imageURI))
	digest := hex.EncodeToString(sum[:])
	repo, _, _ := strings.Cut(imageURI, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return lambdaCode{imageURI: imageURI, resolvedImageURI: repo + "@sha256:" + digest, sha256: digest}, nil
}

// zipCode checks that zipFile is a zip archive and sums it as Lambda
// does, in base64.
func zipCode(zipFile []byte) (lambdaCode, *apiError) {
	if _, err := zip.NewReader(bytes.NewReader(zipFile), int64(len(zipFile))); err != nil {
		return lambdaCode{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameterValueException",
			message: "Could not unzip uploaded file. Please check your file, then try to upload again."}
	}
	sum := sha256.Sum256(zipFile)
	return lambdaCode{sha256: base64.StdEncoding.EncodeToString(sum[:]), size: int64(len(zipFile))}, nil
}

// routeLambda finds the Lambda operation of req from its method and path,
// and decodes its parameters.
func routeLambda(req *request) {
	r := req.r
	labels := pathLabels(r, lambdaPrefix)
	req.labels = labels
	req.params = map[string]any{}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &req.params); err != nil {
			req.malformed = &apiError{status: http.StatusBadRequest, code: "InvalidRequestContentException",
				message: "Could not parse request body into json: " + err.Error()}
		}
	}
	if zf, ok := req.params["ZipFile"].(string); ok {
		req.params["ZipFile"] = fmt.Sprintf("(%d bytes, base64)", len(zf))
	}
	for k, v := range r.URL.Query() {
		req.params[k] = v[0]
	}
	if len(labels) > 0 {
		req.params["FunctionName"] = labels[0]
	}
	method := r.Method
	switch {
	case len(labels) == 1 && method == http.MethodGet:
		req.op = "GetFunction"
	case len(labels) == 2 && labels[1] == "configuration" && method == http.MethodGet:
		req.op = "GetFunctionConfiguration"
	case len(labels) == 2 && labels[1] == "code" && method == http.MethodPut:
		req.op = "UpdateFunctionCode"
	case len(labels) == 2 && labels[1] == "versions" && method == http.MethodPost:
		req.op = "PublishVersion"
	case len(labels) == 2 && labels[1] == "versions" && method == http.MethodGet:
		req.op = "ListVersionsByFunction"
	case len(labels) == 2 && labels[1] == "aliases" && method == http.MethodPost:
		req.op = "CreateAlias"
	case len(labels) == 3 && labels[1] == "aliases" && method == http.MethodGet:
		req.op = "GetAlias"
		req.params["Name"] = labels[2]
	case len(labels) == 3 && labels[1] == "aliases" && method == http.MethodPut:
		req.op = "UpdateAlias"
		req.params["Name"] = labels[2]
	default:
		req.op = method + " " + r.URL.Path
	}
}

func (f *Fake) serveLambda(w http.ResponseWriter, req *request) *apiError {
	var status int
	var out any
	var aerr *apiError
	switch req.op {
	case "GetFunction", "GetFunctionConfiguration":
		status, out, aerr = f.getFunction(req)
	case "UpdateFunctionCode":
		status, out, aerr = f.updateFunctionCode(req)
	case "PublishVersion":
		status, out, aerr = f.publishVersion(req)
	case "ListVersionsByFunction":
		status, out, aerr = f.listVersionsByFunction(req)
	case "CreateAlias", "GetAlias", "UpdateAlias":
		status, out, aerr = f.serveAlias(req)
	default:
		return notModeled(Lambda, req.op)
	}
	if aerr != nil {
		return aerr
	}
	writeJSON(w, req, status, "application/json", out)
	return nil
}

func lambdaNotFound(arn string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Function not found: " + arn}
}

func invalidLambdaParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidParameterValueException", message: fmt.Sprintf(format, args...)}
}

// functionLocked finds the function a FunctionName names, with the
// qualifier it carries or the Qualifier parameter. f.mu must be held.
func (f *Fake) functionLocked(req *request) (*function, string, *apiError) {
	ref := ""
	if len(req.labels) > 0 {
		ref = req.labels[0]
	}
	m := functionRef.FindStringSubmatch(ref)
	if m == nil {
		return nil, "", &apiError{status: http.StatusBadRequest, code: "ValidationException",
			message: fmt.Sprintf("1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?", ref)}
	}
	region, account, name, qualifier := m[1], m[2], m[3], m[4]
	if q := req.r.URL.Query().Get("Qualifier"); q != "" {
		if qualifier != "" && q != qualifier {
			return nil, "", invalidLambdaParameter("The derived qualifier from the function name does not match the specified qualifier.")
		}
		qualifier = q
	}
	fn := f.functions[name]
	if fn == nil || (region != "" && region != f.region) || (account != "" && account != AccountID) {
		return nil, "", lambdaNotFound(f.functionARN(name, qualifier))
	}
	return fn, qualifier, nil
}

// lambdaConfiguration is FunctionConfiguration as Lambda answers it.
type lambdaConfiguration struct {
	FunctionName               string            `json:"FunctionName"`
	FunctionArn                string            `json:"FunctionArn"`
	Role                       string            `json:"Role"`
	Runtime                    string            `json:"Runtime,omitempty"`
	Handler                    string            `json:"Handler,omitempty"`
	CodeSize                   int64             `json:"CodeSize"`
	Description                string            `json:"Description"`
	Timeout                    int               `json:"Timeout"`
	MemorySize                 int               `json:"MemorySize"`
	LastModified               string            `json:"LastModified"`
	CodeSha256                 string            `json:"CodeSha256"`
	Version                    string            `json:"Version"`
	TracingConfig              map[string]string `json:"TracingConfig"`
	RevisionID                 string            `json:"RevisionId"`
	State                      string            `json:"State"`
	LastUpdateStatus           string            `json:"LastUpdateStatus"`
	LastUpdateStatusReason     string            `json:"LastUpdateStatusReason,omitempty"`
	LastUpdateStatusReasonCode string            `json:"LastUpdateStatusReasonCode,omitempty"`
	PackageType                string            `json:"PackageType"`
	Architectures              []string          `json:"Architectures"`
	EphemeralStorage           map[string]int    `json:"EphemeralStorage"`
	LoggingConfig              map[string]string `json:"LoggingConfig"`
}

// configuration describes fn at version v ($LATEST when nil); qualifier
// is what its ARN is qualified with.
func (f *Fake) configuration(fn *function, v *functionVersion, qualifier string) lambdaConfiguration {
	c := lambdaConfiguration{
		FunctionName:     fn.name,
		FunctionArn:      f.functionARN(fn.name, qualifier),
		Role:             fmt.Sprintf("arn:aws:iam::%s:role/%s-role", AccountID, fn.name),
		Timeout:          3,
		MemorySize:       128,
		TracingConfig:    map[string]string{"Mode": "PassThrough"},
		State:            fn.state,
		PackageType:      fn.packageType,
		Architectures:    []string{"x86_64"},
		EphemeralStorage: map[string]int{"Size": 512},
		LoggingConfig:    map[string]string{"LogFormat": "Text", "LogGroup": "/aws/lambda/" + fn.name},
	}
	if fn.packageType == "Zip" {
		c.Runtime, c.Handler = "provided.al2023", "bootstrap"
	}
	if v == nil {
		c.Version = "$LATEST"
		c.CodeSha256, c.CodeSize = fn.code.sha256, fn.code.size
		c.LastModified = lambdaTime(fn.lastModified)
		c.RevisionID = fn.revision
		c.LastUpdateStatus = fn.lastUpdateStatus
		c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = fn.lastUpdateReason, fn.lastUpdateCode
		return c
	}
	c.Version = v.version
	c.Description = v.description
	c.CodeSha256, c.CodeSize = v.code.sha256, v.code.size
	c.LastModified = lambdaTime(v.lastModified)
	c.RevisionID = v.revision
	c.LastUpdateStatus = "Successful"
	return c
}

// lambdaTime is Lambda's LastModified: ISO 8601 with milliseconds and a
// numeric zone.
func lambdaTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000-0700")
}

// resolveLocked finds the version a qualifier names: nil for $LATEST or
// none; an alias resolves to its version. f.mu must be held.
func (f *Fake) resolveLocked(fn *function, qualifier string) (*functionVersion, *apiError) {
	if qualifier == "" || qualifier == "$LATEST" {
		return nil, nil
	}
	if a := fn.aliases[qualifier]; a != nil {
		qualifier = a.version
		if qualifier == "$LATEST" {
			return nil, nil
		}
	}
	for _, v := range fn.versions {
		if v.version == qualifier {
			return v, nil
		}
	}
	return nil, lambdaNotFound(f.functionARN(fn.name, qualifier))
}

func (f *Fake) getFunction(req *request) (int, any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, qualifier, aerr := f.functionLocked(req)
	if aerr != nil {
		return 0, nil, aerr
	}
	v, aerr := f.resolveLocked(fn, qualifier)
	if aerr != nil {
		return 0, nil, aerr
	}
	config := f.configuration(fn, v, qualifier)
	if req.op == "GetFunctionConfiguration" {
		return http.StatusOK, config, nil
	}
	code := fn.code
	if v != nil {
		code = v.code
	}
	location := map[string]string{}
	if fn.packageType == "Image" {
		location["RepositoryType"] = "ECR"
		location["ImageUri"] = code.imageURI
		location["ResolvedImageUri"] = code.resolvedImageURI
	} else {
		location["RepositoryType"] = "S3"
		location["Location"] = fmt.Sprintf("https://awslambda-%s-tasks.s3.%s.amazonaws.com/snapshots/%s/%s-awstest", f.region, f.region, AccountID, fn.name)
	}
	return http.StatusOK, map[string]any{"Configuration": config, "Code": location}, nil
}

func updateInProgress(arn string) *apiError {
	return &apiError{status: http.StatusConflict, code: "ResourceConflictException",
		message: "The operation cannot be performed at this time. An update is in progress for resource: " + arn}
}

func revisionMismatch() *apiError {
	return &apiError{status: http.StatusPreconditionFailed, code: "PreconditionFailedException",
		message: "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"}
}

func (f *Fake) updateFunctionCode(req *request) (int, any, *apiError) {
	var in struct {
		ImageURI   string `json:"ImageUri"`
		ZipFile    []byte `json:"ZipFile"`
		S3Bucket   string `json:"S3Bucket"`
		S3Key      string `json:"S3Key"`
		Publish    bool   `json:"Publish"`
		DryRun     bool   `json:"DryRun"`
		RevisionID string `json:"RevisionId"`
	}
	if err := json.Unmarshal(req.body, &in); err != nil {
		return 0, nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContentException", message: err.Error()}
	}
	if in.Publish {
		return 0, nil, notModeled(Lambda, "UpdateFunctionCode with Publish (call PublishVersion once the update is Successful)")
	}
	f.mu.Lock()
	fn, qualifier, aerr := f.functionLocked(req)
	var packageType string
	if fn != nil {
		packageType = fn.packageType
	}
	f.mu.Unlock()
	if aerr != nil {
		return 0, nil, aerr
	}
	if qualifier != "" {
		return 0, nil, invalidLambdaParameter("Unsupported qualifier: %s. Only $LATEST can be updated.", qualifier)
	}
	var code lambdaCode
	switch {
	case packageType == "Image" && in.ImageURI == "":
		return 0, nil, invalidLambdaParameter("Please provide ImageUri when updating a function with packageType Image.")
	case packageType == "Zip" && in.ImageURI != "":
		return 0, nil, invalidLambdaParameter("Please don't provide ImageUri when updating a function with packageType Zip.")
	case packageType == "Image":
		// Outside f.mu: the registry is asked.
		if code, aerr = f.imageCode(req.r.Context(), in.ImageURI); aerr != nil {
			return 0, nil, aerr
		}
	case in.ZipFile != nil:
		if code, aerr = zipCode(in.ZipFile); aerr != nil {
			return 0, nil, aerr
		}
	case in.S3Bucket != "" && in.S3Key != "":
		data, ok := f.Object(in.S3Bucket, in.S3Key)
		if !ok {
			return 0, nil, invalidLambdaParameter("Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.")
		}
		if code, aerr = zipCode(data); aerr != nil {
			return 0, nil, aerr
		}
	default:
		return 0, nil, invalidLambdaParameter("Please provide a source for function code.")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if fn.lastUpdateStatus == "InProgress" {
		return 0, nil, updateInProgress(f.functionARN(fn.name, ""))
	}
	if in.RevisionID != "" && in.RevisionID != fn.revision {
		return 0, nil, revisionMismatch()
	}
	if in.DryRun {
		c := f.configuration(fn, nil, "")
		c.CodeSha256, c.CodeSize = code.sha256, code.size
		return http.StatusOK, c, nil
	}
	reason, fails := f.lambdaFailures[code.imageURI]
	if code.imageURI == "" {
		fails = false
	}
	fn.previousCode, fn.code = fn.code, code
	fn.lastModified, fn.revision = req.at, f.uuidLocked()
	fn.lastUpdateStatus, fn.lastUpdateReason, fn.lastUpdateCode = "InProgress", "", ""
	f.scheduleLocked(f.lambdaUpdateTime, func() {
		fn.revision = f.uuidLocked()
		if fails {
			fn.code = fn.previousCode
			fn.lastUpdateStatus, fn.lastUpdateReason, fn.lastUpdateCode = "Failed", reason, "InvalidImage"
			return
		}
		fn.lastUpdateStatus = "Successful"
	})
	return http.StatusOK, f.configuration(fn, nil, ""), nil
}

func (f *Fake) publishVersion(req *request) (int, any, *apiError) {
	var in struct {
		CodeSha256  string `json:"CodeSha256"`
		Description string `json:"Description"`
		RevisionID  string `json:"RevisionId"`
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return 0, nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContentException", message: err.Error()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, _, aerr := f.functionLocked(req)
	if aerr != nil {
		return 0, nil, aerr
	}
	if fn.lastUpdateStatus == "InProgress" {
		return 0, nil, updateInProgress(f.functionARN(fn.name, ""))
	}
	if in.RevisionID != "" && in.RevisionID != fn.revision {
		return 0, nil, revisionMismatch()
	}
	if in.CodeSha256 != "" && in.CodeSha256 != fn.code.sha256 {
		return 0, nil, invalidLambdaParameter("CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try again with the current CodeSHA256.", in.CodeSha256, fn.code.sha256)
	}
	// Lambda publishes nothing new when $LATEST has not changed since the
	// last version: it answers that version.
	if n := len(fn.versions); n > 0 && fn.versions[n-1].code == fn.code {
		v := fn.versions[n-1]
		return http.StatusCreated, f.configuration(fn, v, v.version), nil
	}
	v := &functionVersion{
		version: strconv.Itoa(len(fn.versions) + 1), code: fn.code, description: in.Description,
		lastModified: req.at, revision: f.uuidLocked(),
	}
	fn.versions = append(fn.versions, v)
	return http.StatusCreated, f.configuration(fn, v, v.version), nil
}

func (f *Fake) listVersionsByFunction(req *request) (int, any, *apiError) {
	max := 0
	if s := req.r.URL.Query().Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return 0, nil, invalidLambdaParameter("1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 10000", s)
		}
		max = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, qualifier, aerr := f.functionLocked(req)
	if aerr != nil {
		return 0, nil, aerr
	}
	if qualifier != "" {
		return 0, nil, invalidLambdaParameter("Versions cannot be listed for a qualified function name.")
	}
	all := []lambdaConfiguration{f.configuration(fn, nil, "$LATEST")}
	for _, v := range fn.versions {
		all = append(all, f.configuration(fn, v, v.version))
	}
	versions, next, ok := page(all, req.r.URL.Query().Get("Marker"), max, 50)
	if !ok {
		return 0, nil, invalidLambdaParameter("Invalid marker.")
	}
	out := map[string]any{"Versions": versions}
	if next != "" {
		out["NextMarker"] = next
	}
	return http.StatusOK, out, nil
}

type aliasConfiguration struct {
	AliasArn        string         `json:"AliasArn"`
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     string         `json:"Description"`
	RevisionID      string         `json:"RevisionId"`
	RoutingConfig   map[string]any `json:"RoutingConfig,omitempty"`
}

func (f *Fake) aliasConfiguration(fn *function, a *alias) aliasConfiguration {
	c := aliasConfiguration{AliasArn: f.functionARN(fn.name, a.name), Name: a.name,
		FunctionVersion: a.version, Description: a.description, RevisionID: a.revision}
	if len(a.weights) > 0 {
		c.RoutingConfig = map[string]any{"AdditionalVersionWeights": maps.Clone(a.weights)}
	}
	return c
}

func (f *Fake) serveAlias(req *request) (int, any, *apiError) {
	var in struct {
		Name            string  `json:"Name"`
		FunctionVersion *string `json:"FunctionVersion"`
		Description     *string `json:"Description"`
		RevisionID      string  `json:"RevisionId"`
		RoutingConfig   *struct {
			AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
		} `json:"RoutingConfig"`
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return 0, nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContentException", message: err.Error()}
		}
	}
	if len(req.labels) == 3 {
		in.Name = req.labels[2]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, _, aerr := f.functionLocked(req)
	if aerr != nil {
		return 0, nil, aerr
	}
	a := fn.aliases[in.Name]
	// versionExists checks a version an alias is to point at.
	versionExists := func(version string) *apiError {
		if version == "$LATEST" || slices.ContainsFunc(fn.versions, func(v *functionVersion) bool { return v.version == version }) {
			return nil
		}
		return lambdaNotFound(f.functionARN(fn.name, version))
	}
	switch req.op {
	case "GetAlias":
		if a == nil {
			return 0, nil, &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException",
				message: "Alias not found: " + f.functionARN(fn.name, in.Name)}
		}
		return http.StatusOK, f.aliasConfiguration(fn, a), nil
	case "CreateAlias":
		if !aliasName.MatchString(in.Name) || isDigits(in.Name) {
			return 0, nil, &apiError{status: http.StatusBadRequest, code: "ValidationException",
				message: fmt.Sprintf("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)", in.Name)}
		}
		if in.FunctionVersion == nil || *in.FunctionVersion == "" {
			return 0, nil, invalidLambdaParameter("FunctionVersion is required.")
		}
		if a != nil {
			return 0, nil, &apiError{status: http.StatusConflict, code: "ResourceConflictException",
				message: "Alias already exists: " + f.functionARN(fn.name, in.Name)}
		}
		if aerr := versionExists(*in.FunctionVersion); aerr != nil {
			return 0, nil, aerr
		}
		a = &alias{name: in.Name, version: *in.FunctionVersion, revision: f.uuidLocked()}
		if in.Description != nil {
			a.description = *in.Description
		}
		if in.RoutingConfig != nil {
			a.weights = in.RoutingConfig.AdditionalVersionWeights
		}
		fn.aliases[a.name] = a
		return http.StatusCreated, f.aliasConfiguration(fn, a), nil
	default: // UpdateAlias
		if a == nil {
			return 0, nil, &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException",
				message: "Alias not found: " + f.functionARN(fn.name, in.Name)}
		}
		if in.RevisionID != "" && in.RevisionID != a.revision {
			return 0, nil, revisionMismatch()
		}
		if in.FunctionVersion != nil {
			if aerr := versionExists(*in.FunctionVersion); aerr != nil {
				return 0, nil, aerr
			}
			a.version = *in.FunctionVersion
		}
		if in.Description != nil {
			a.description = *in.Description
		}
		if in.RoutingConfig != nil {
			a.weights = in.RoutingConfig.AdditionalVersionWeights
		}
		a.revision = f.uuidLocked()
		return http.StatusOK, f.aliasConfiguration(fn, a), nil
	}
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
