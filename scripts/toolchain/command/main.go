// Stand-in for pulumi-resource-command, written for qui3tly-cloud because the
// pulumi-command module is not served by the Go module proxy this project can reach.
// It implements the same tokens and properties as @pulumi/command's SDK for what this
// project uses: command:remote:Command (hosts) and command:local:Command (the toolchain's
// own --verify).
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/glob"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/infer/types"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

var version = "0.0.1"

func main() {
	prov, err := infer.NewProviderBuilder().
		WithResources(
			infer.Resource(&LocalCommand{}),
			infer.Resource(&RemoteCommand{}),
		).
		Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := prov.Run(context.Background(), "command", version); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ---------- shared ----------

// Logging is the SDK's enum: stdout, stderr, stdoutAndStderr, none.
type Logging string

func (l *Logging) stdout() bool { return l == nil || *l == "stdout" || *l == "stdoutAndStderr" }
func (l *Logging) stderr() bool { return l == nil || *l == "stderr" || *l == "stdoutAndStderr" }

// lineLogger forwards each line a command prints to the engine as an info message.
type lineLogger struct {
	ctx context.Context
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.Reset()
			w.buf.WriteString(line)
			return len(b), nil
		}
		p.GetLogger(w.ctx).InfoStatus(strings.TrimRight(line, "\n"))
	}
}

func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		p.GetLogger(w.ctx).InfoStatus(w.buf.String())
		w.buf.Reset()
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// outputs wires a command's stdout/stderr into captured buffers, a combined buffer for
// error messages, and (per `logging`) the engine log.
type outputs struct {
	stdout, stderr bytes.Buffer
	both           lockedWriter
	bothBuf        bytes.Buffer
	log            *lineLogger
}

func newOutputs(ctx context.Context, logging *Logging) (*outputs, io.Writer, io.Writer) {
	o := &outputs{log: &lineLogger{ctx: ctx}}
	o.both.w = &o.bothBuf
	so := []io.Writer{&o.stdout, &o.both}
	se := []io.Writer{&o.stderr, &o.both}
	if logging.stdout() {
		so = append(so, o.log)
	}
	if logging.stderr() {
		se = append(se, o.log)
	}
	return o, io.MultiWriter(so...), io.MultiWriter(se...)
}

func trimNL(s string) string { return strings.TrimSuffix(s, "\n") }

// ---------- command:local:Command / command:local:run ----------

type LocalBaseInputs struct {
	Stdin                  *string            `pulumi:"stdin,optional"`
	Logging                *Logging           `pulumi:"logging,optional"`
	Interpreter            *[]string          `pulumi:"interpreter,optional"`
	Dir                    *string            `pulumi:"dir,optional"`
	Environment            *map[string]string `pulumi:"environment,optional"`
	AssetPaths             *[]string          `pulumi:"assetPaths,optional"`
	ArchivePaths           *[]string          `pulumi:"archivePaths,optional"`
	AddPreviousOutputInEnv *bool              `pulumi:"addPreviousOutputInEnv,optional"`
}

type LocalBaseOutputs struct {
	Stdout  string                            `pulumi:"stdout"`
	Stderr  string                            `pulumi:"stderr"`
	Assets  *map[string]*types.AssetOrArchive `pulumi:"assets,optional"`
	Archive *resource.Archive                 `pulumi:"archive,optional"`
}

func runLocal(ctx context.Context, command string, in LocalBaseInputs, out *LocalBaseOutputs) error {
	args := []string{"/bin/sh", "-c"}
	if in.Interpreter != nil && len(*in.Interpreter) > 0 {
		args = append([]string{}, *in.Interpreter...)
	}
	args = append(args, command)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	o, so, se := newOutputs(ctx, in.Logging)
	cmd.Stdout, cmd.Stderr = so, se
	var err error
	if in.Dir != nil {
		cmd.Dir = *in.Dir
	} else if cmd.Dir, err = os.Getwd(); err != nil {
		return err
	}
	cmd.Env = os.Environ()
	if in.Environment != nil {
		for k, v := range *in.Environment {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if in.AddPreviousOutputInEnv == nil || *in.AddPreviousOutputInEnv {
		if out.Stdout != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+out.Stdout)
		}
		if out.Stderr != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDERR="+out.Stderr)
		}
	}
	if in.Stdin != nil && *in.Stdin != "" {
		cmd.Stdin = strings.NewReader(*in.Stdin)
	}
	err = cmd.Run()
	o.log.flush()
	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, command, o.bothBuf.String())
	}
	if in.AssetPaths != nil {
		assets, err := globAssets(cmd.Dir, *in.AssetPaths)
		if err != nil {
			return err
		}
		out.Assets = &assets
	}
	if in.ArchivePaths != nil {
		assets, err := globAssets(cmd.Dir, *in.ArchivePaths)
		if err != nil {
			return err
		}
		m := map[string]any{}
		for k, v := range assets {
			m[k] = v.Asset
		}
		if out.Archive, err = resource.NewAssetArchive(m); err != nil {
			return err
		}
	}
	out.Stdout = trimNL(o.stdout.String())
	out.Stderr = trimNL(o.stderr.String())
	return nil
}

// globAssets: files (not dirs) under dir matching the globs in order; "!" excludes.
func globAssets(dir string, globs []string) (map[string]*types.AssetOrArchive, error) {
	type rule struct {
		g       glob.Glob
		exclude bool
	}
	var rules []rule
	for _, s := range globs {
		ex := strings.HasPrefix(s, "!")
		g, err := glob.Compile(strings.TrimPrefix(s, "!"), '/')
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule{g, ex})
	}
	assets := map[string]*types.AssetOrArchive{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, r := range rules {
			if !r.g.Match(rel) {
				continue
			}
			if r.exclude {
				delete(assets, rel)
				continue
			}
			a, err := resource.NewPathAsset(path.Join(dir, rel))
			if err != nil {
				return err
			}
			assets[rel] = &types.AssetOrArchive{Asset: a}
		}
		return nil
	})
	return assets, err
}

type LocalCommand struct{}

type LocalCommandInputs struct {
	LocalBaseInputs
	Triggers *[]any  `pulumi:"triggers,optional"`
	Create   *string `pulumi:"create,optional"`
	Delete   *string `pulumi:"delete,optional"`
	Update   *string `pulumi:"update,optional"`
}

type LocalCommandOutputs struct {
	LocalCommandInputs
	LocalBaseOutputs
}

func (*LocalCommand) Annotate(a infer.Annotator) { a.SetToken("local", "Command") }

func (*LocalCommand) Create(ctx context.Context, req infer.CreateRequest[LocalCommandInputs]) (infer.CreateResponse[LocalCommandOutputs], error) {
	state := LocalCommandOutputs{LocalCommandInputs: req.Inputs}
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil || req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[LocalCommandOutputs]{ID: id, Output: state}, err
	}
	err = runLocal(ctx, *req.Inputs.Create, req.Inputs.LocalBaseInputs, &state.LocalBaseOutputs)
	return infer.CreateResponse[LocalCommandOutputs]{ID: id, Output: state}, err
}

func (*LocalCommand) Update(ctx context.Context, req infer.UpdateRequest[LocalCommandInputs, LocalCommandOutputs]) (infer.UpdateResponse[LocalCommandOutputs], error) {
	state := LocalCommandOutputs{LocalCommandInputs: req.Inputs, LocalBaseOutputs: req.State.LocalBaseOutputs}
	cmd := req.Inputs.Create
	if req.Inputs.Update != nil {
		cmd = req.Inputs.Update
	}
	if req.DryRun || cmd == nil {
		return infer.UpdateResponse[LocalCommandOutputs]{Output: state}, nil
	}
	err := runLocal(ctx, *cmd, req.Inputs.LocalBaseInputs, &state.LocalBaseOutputs)
	return infer.UpdateResponse[LocalCommandOutputs]{Output: state}, err
}

func (*LocalCommand) Delete(ctx context.Context, req infer.DeleteRequest[LocalCommandOutputs]) (infer.DeleteResponse, error) {
	s := req.State
	if s.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	return infer.DeleteResponse{}, runLocal(ctx, *s.Delete, s.LocalBaseInputs, &s.LocalBaseOutputs)
}

// ---------- remote (SSH) ----------

type ProxyConnection struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	Host               string   `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

type Connection struct {
	ProxyConnection
	Proxy *ProxyConnection `pulumi:"proxy,optional"`
}

func (c *ProxyConnection) config() (*ssh.ClientConfig, error) {
	user := "root"
	if c.User != nil {
		user = *c.User
	}
	cfg := &ssh.ClientConfig{User: user, HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	if c.PerDialTimeout != nil {
		cfg.Timeout = time.Duration(*c.PerDialTimeout) * time.Second
	} else {
		cfg.Timeout = 15 * time.Second
	}
	if c.HostKey != nil && *c.HostKey != "" {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("parsing hostKey: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(pk)
	}
	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, fmt.Errorf("parsing privateKey: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		pw := *c.Password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, qs []string, _ []bool) ([]string, error) {
				a := make([]string, len(qs))
				for i := range a {
					a[i] = pw
				}
				return a, nil
			}))
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if c.AgentSocketPath != nil {
		sock = *c.AgentSocketPath
	}
	if sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	return cfg, nil
}

func (c *ProxyConnection) addr() string {
	port := 22
	if c.Port != nil {
		port = int(*c.Port)
	}
	return net.JoinHostPort(c.Host, fmt.Sprint(port))
}

// dial retries (dialErrorLimit, default 10; -1 = forever) like the real provider does,
// because freshly created servers usually refuse SSH for a while.
func dialRetry(ctx context.Context, c *ProxyConnection, dial func(cfg *ssh.ClientConfig) (*ssh.Client, error)) (*ssh.Client, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	limit := 10
	if c.DialErrorLimit != nil {
		limit = *c.DialErrorLimit
	}
	for i := 1; ; i++ {
		client, err := dial(cfg)
		if err == nil {
			return client, nil
		}
		if limit >= 0 && i >= limit {
			return nil, fmt.Errorf("dial %s failed after %d attempts: %w", c.addr(), i, err)
		}
		p.GetLogger(ctx).InfoStatusf("Dial %d/%d to %s failed: %v; retrying", i, limit, c.addr(), err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(i, 10)) * time.Second):
		}
	}
}

func (c *Connection) Dial(ctx context.Context) (*ssh.Client, error) {
	if c.Proxy == nil {
		return dialRetry(ctx, &c.ProxyConnection, func(cfg *ssh.ClientConfig) (*ssh.Client, error) {
			return ssh.Dial("tcp", c.addr(), cfg)
		})
	}
	jump, err := dialRetry(ctx, c.Proxy, func(cfg *ssh.ClientConfig) (*ssh.Client, error) {
		return ssh.Dial("tcp", c.Proxy.addr(), cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return dialRetry(ctx, &c.ProxyConnection, func(cfg *ssh.ClientConfig) (*ssh.Client, error) {
		conn, err := jump.Dial("tcp", c.addr())
		if err != nil {
			return nil, err
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, c.addr(), cfg)
		if err != nil {
			return nil, err
		}
		return ssh.NewClient(cc, chans, reqs), nil
	})
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

type RemoteBaseInputs struct {
	Connection             *Connection        `pulumi:"connection" provider:"secret"`
	Environment            *map[string]string `pulumi:"environment,optional"`
	Triggers               *[]any             `pulumi:"triggers,optional"`
	Create                 *string            `pulumi:"create,optional"`
	Delete                 *string            `pulumi:"delete,optional"`
	Update                 *string            `pulumi:"update,optional"`
	Stdin                  *string            `pulumi:"stdin,optional"`
	Logging                *Logging           `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool              `pulumi:"addPreviousOutputInEnv,optional"`
}

type RemoteCommand struct{}

type RemoteCommandOutputs struct {
	RemoteBaseInputs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (*RemoteCommand) Annotate(a infer.Annotator) { a.SetToken("remote", "Command") }

func runRemote(ctx context.Context, command string, in RemoteBaseInputs, out *RemoteCommandOutputs) error {
	client, err := in.Connection.Dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer session.Close()
	env := map[string]string{}
	if in.Environment != nil {
		for k, v := range *in.Environment {
			env[k] = v
		}
	}
	if in.AddPreviousOutputInEnv == nil || *in.AddPreviousOutputInEnv {
		if out.Stdout != "" {
			env["PULUMI_COMMAND_STDOUT"] = out.Stdout
		}
		if out.Stderr != "" {
			env["PULUMI_COMMAND_STDERR"] = out.Stderr
		}
	}
	// sshd only accepts variables listed in AcceptEnv; export the rest in the command.
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var exports strings.Builder
	for _, k := range keys {
		if session.Setenv(k, env[k]) != nil {
			fmt.Fprintf(&exports, "export %s=%s; ", k, shellQuote(env[k]))
		}
	}
	o, so, se := newOutputs(ctx, in.Logging)
	session.Stdout, session.Stderr = so, se
	if in.Stdin != nil && *in.Stdin != "" {
		session.Stdin = strings.NewReader(*in.Stdin)
	}
	err = session.Run(exports.String() + command)
	o.log.flush()
	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, command, o.bothBuf.String())
	}
	out.Stdout = trimNL(o.stdout.String())
	out.Stderr = trimNL(o.stderr.String())
	return nil
}

func (*RemoteCommand) Create(ctx context.Context, req infer.CreateRequest[RemoteBaseInputs]) (infer.CreateResponse[RemoteCommandOutputs], error) {
	state := RemoteCommandOutputs{RemoteBaseInputs: req.Inputs}
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil || req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[RemoteCommandOutputs]{ID: id, Output: state}, err
	}
	err = runRemote(ctx, *req.Inputs.Create, req.Inputs, &state)
	return infer.CreateResponse[RemoteCommandOutputs]{ID: id, Output: state}, err
}

func (*RemoteCommand) Update(ctx context.Context, req infer.UpdateRequest[RemoteBaseInputs, RemoteCommandOutputs]) (infer.UpdateResponse[RemoteCommandOutputs], error) {
	state := RemoteCommandOutputs{RemoteBaseInputs: req.Inputs, Stdout: req.State.Stdout, Stderr: req.State.Stderr}
	cmd := req.Inputs.Create
	if req.Inputs.Update != nil {
		cmd = req.Inputs.Update
	}
	if req.DryRun || cmd == nil {
		return infer.UpdateResponse[RemoteCommandOutputs]{Output: state}, nil
	}
	err := runRemote(ctx, *cmd, req.Inputs, &state)
	return infer.UpdateResponse[RemoteCommandOutputs]{Output: state}, err
}

func (*RemoteCommand) Delete(ctx context.Context, req infer.DeleteRequest[RemoteCommandOutputs]) (infer.DeleteResponse, error) {
	s := req.State
	if s.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	return infer.DeleteResponse{}, runRemote(ctx, *s.Delete, s.RemoteBaseInputs, &s)
}
