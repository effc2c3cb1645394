package dev.weir.sqlrunner;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * The program weir submits (as a jar, via {@code POST /jars/{id}/run}) for SQL deployments.
 *
 * <p>The Flink distributions weir runs against have no SQL Gateway, so the SQL script travels in
 * the program arguments: {@code --sql-base64 <base64 of the UTF-8 script>} (or {@code --sql-file
 * <path>} for local debugging). The script is split into statements and run with a streaming (or,
 * for batch jobs, batch) {@link TableEnvironment}:
 *
 * <ul>
 *   <li>{@code SET 'k' = 'v'} / {@code SET k = v} / {@code RESET 'k'}: applied to the table config
 *       here, because {@code executeSql} rejects them in these Flink versions;
 *   <li>DDL ({@code CREATE/DROP/ALTER/USE/LOAD/UNLOAD}): {@code executeSql};
 *   <li>{@code INSERT INTO/OVERWRITE} and {@code EXECUTE STATEMENT SET BEGIN ... END}: collected
 *       into ONE {@link StatementSet} that is executed once at the end, so all INSERTs of a
 *       script become a single Flink job (one job id, one savepoint);
 *   <li>anything else (SELECT, EXPLAIN, SHOW, CTAS, ...): rejected.
 * </ul>
 *
 * <p>Every error is thrown out of {@code main} (never {@code System.exit}, which would take the
 * JobManager down) so that {@code /jars/run} answers with the message.
 */
public final class SqlRunner {

    private SqlRunner() {}

    /** One statement of the script, with where it started (for error messages). */
    static final class Statement {
        final int number; // 1-based among non-empty statements
        final int line; // 1-based line of the first non-comment character
        final String sql; // comments stripped, trimmed, without the trailing ';'

        Statement(int number, int line, String sql) {
            this.number = number;
            this.line = line;
            this.sql = sql;
        }

        String describe() {
            String first = sql.split("\\R", 2)[0];
            if (first.length() > 120) {
                first = first.substring(0, 117) + "...";
            }
            return "statement #" + number + " (line " + line + "): " + first;
        }
    }

    /**
     * Streaming, unless the submission's configuration says {@code execution.runtime-mode:
     * BATCH} (weir sets it for {@code spec.mode: batch}): the planner's mode is fixed when the
     * table environment is created, so a {@code SET} in the script cannot change it.
     */
    static EnvironmentSettings settings() {
        ReadableConfig submitted =
                StreamExecutionEnvironment.getExecutionEnvironment().getConfiguration();
        EnvironmentSettings.Builder builder = EnvironmentSettings.newInstance();
        if (submitted.get(ExecutionOptions.RUNTIME_MODE) == RuntimeExecutionMode.BATCH) {
            return builder.inBatchMode().build();
        }
        return builder.inStreamingMode().build();
    }

    public static void main(String[] args) throws Exception {
        String script = readScript(args);
        List<Statement> statements = split(script);
        if (statements.isEmpty()) {
            throw new IllegalArgumentException("weir sql-runner: the SQL script is empty");
        }

        TableEnvironment tableEnv = TableEnvironment.create(settings());
        StatementSet statementSet = tableEnv.createStatementSet();
        int inserts = 0;

        for (int i = 0; i < statements.size(); i++) {
            Statement st = statements.get(i);
            String kind = classify(st.sql);
            switch (kind) {
                case "SET":
                    applySet(tableEnv, st);
                    break;
                case "RESET":
                    applyReset(tableEnv, st);
                    break;
                case "DDL":
                    executeDdl(tableEnv, st);
                    break;
                case "INSERT":
                    addInsert(statementSet, st, stripExecute(st.sql));
                    inserts++;
                    break;
                case "STATEMENT_SET":
                    i = addStatementSetBlock(statementSet, statements, i);
                    inserts++;
                    break;
                case "CTAS":
                    throw fail(
                            st,
                            "CREATE TABLE ... AS SELECT is not supported (it would start a job of"
                                    + " its own); use CREATE TABLE + INSERT INTO instead");
                default:
                    throw fail(
                            st,
                            "only SET, RESET, CREATE/DROP/ALTER/USE/LOAD/UNLOAD and INSERT"
                                    + " statements are allowed in a weir SQL job, got "
                                    + kind);
            }
        }

        if (inserts == 0) {
            throw new IllegalArgumentException(
                    "weir sql-runner: the SQL script contains no INSERT statement, so there is no"
                            + " job to run (add INSERT INTO <sink> SELECT ...)");
        }
        // One execute() for all INSERTs: a single job. In a /jars/run submission this submits
        // the job detached and returns.
        TableResult result = statementSet.execute();
        result.getJobClient()
                .ifPresent(c -> System.out.println("weir sql-runner: submitted job " + c.getJobID()));
    }

    // ------------------------------------------------------------------ arguments

    static String readScript(String[] args) throws Exception {
        String script = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (("--sql-base64".equals(a) || "--sql-file".equals(a)) && i + 1 >= args.length) {
                throw new IllegalArgumentException("weir sql-runner: " + a + " needs a value");
            }
            if ("--sql-base64".equals(a)) {
                // Whitespace (line-wrapped base64) is dropped; then a strict decoder, so
                // garbage fails loudly. The URL-safe alphabet is accepted too.
                String b64 = args[++i].replaceAll("\\s+", "");
                try {
                    byte[] bytes =
                            b64.contains("-") || b64.contains("_")
                                    ? Base64.getUrlDecoder().decode(b64)
                                    : Base64.getDecoder().decode(b64);
                    script = new String(bytes, StandardCharsets.UTF_8);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(
                            "weir sql-runner: --sql-base64 is not valid base64: " + e.getMessage(), e);
                }
            } else if ("--sql-file".equals(a)) {
                script = new String(Files.readAllBytes(Paths.get(args[++i])), StandardCharsets.UTF_8);
            }
            // Unknown arguments are ignored on purpose (forward compatibility).
        }
        if (script == null) {
            throw new IllegalArgumentException(
                    "weir sql-runner: missing --sql-base64 <base64 SQL> (or --sql-file <path>)");
        }
        return script;
    }

    // ------------------------------------------------------------------ splitting

    /**
     * Splits a script at top-level ';'. Single-quoted strings ('' escapes), double-quoted and
     * backtick identifiers, '--' line comments and '/* *\/' block comments are respected; comments
     * are removed from the returned statements (outside of quotes).
     */
    static List<Statement> split(String script) {
        List<Statement> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        int line = 1;
        int startLine = -1;
        int n = script.length();
        int i = 0;
        while (i < n) {
            char c = script.charAt(i);
            char next = i + 1 < n ? script.charAt(i + 1) : '\0';
            if (c == '-' && next == '-') {
                // Line comment: skip to end of line (keep the newline).
                while (i < n && script.charAt(i) != '\n') {
                    i++;
                }
                continue;
            }
            if (c == '/' && next == '*') {
                int end = script.indexOf("*/", i + 2);
                int stop = end < 0 ? n : end + 2;
                for (int k = i; k < stop; k++) {
                    if (script.charAt(k) == '\n') {
                        line++;
                    }
                }
                i = stop;
                cur.append(' '); // a comment separates tokens
                continue;
            }
            if (c == '\'' || c == '"' || c == '`') {
                if (startLine < 0) {
                    startLine = line;
                }
                int k = i + 1;
                while (k < n) {
                    char q = script.charAt(k);
                    if (q == c) {
                        if (k + 1 < n && script.charAt(k + 1) == c) {
                            k += 2; // doubled quote = escaped quote
                            continue;
                        }
                        break;
                    }
                    if (q == '\n') {
                        line++;
                    }
                    k++;
                }
                int stop = Math.min(k + 1, n);
                cur.append(script, i, stop);
                i = stop;
                continue;
            }
            if (c == ';') {
                addStatement(out, cur, startLine);
                cur.setLength(0);
                startLine = -1;
                i++;
                continue;
            }
            if (c == '\n') {
                line++;
            }
            if (startLine < 0 && !Character.isWhitespace(c)) {
                startLine = line;
            }
            cur.append(c);
            i++;
        }
        addStatement(out, cur, startLine);
        return out;
    }

    private static void addStatement(List<Statement> out, StringBuilder cur, int startLine) {
        String sql = cur.toString().trim();
        if (!sql.isEmpty()) {
            out.add(new Statement(out.size() + 1, Math.max(startLine, 1), sql));
        }
    }

    // ------------------------------------------------------------------ classification

    private static final Pattern WS = Pattern.compile("\\s+");
    private static final Pattern CTAS =
            Pattern.compile(
                    "^(CREATE|REPLACE)\\s+(OR\\s+REPLACE\\s+)?(TEMPORARY\\s+)?TABLE\\b.*?\\bAS\\s*\\(?\\s*(SELECT|WITH|VALUES)\\b.*",
                    Pattern.CASE_INSENSITIVE | Pattern.DOTALL);

    /** Upper-cased leading words, single-spaced. */
    private static String head(String sql, int words) {
        String[] parts = WS.split(sql.trim(), words + 1);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(words, parts.length); i++) {
            if (i > 0) {
                sb.append(' ');
            }
            sb.append(parts[i].toUpperCase(Locale.ROOT));
        }
        return sb.toString();
    }

    static String classify(String sql) {
        String w1 = head(sql, 1).replaceAll("[^A-Z]", "");
        String w3 = head(sql, 3);
        switch (w1) {
            case "SET":
                return "SET";
            case "RESET":
                return "RESET";
            case "INSERT":
                return "INSERT";
            case "EXECUTE":
                if (w3.startsWith("EXECUTE STATEMENT SET")) {
                    return "STATEMENT_SET";
                }
                if (w3.startsWith("EXECUTE INSERT")) {
                    return "INSERT";
                }
                return "EXECUTE";
            case "BEGIN":
                // SQL client style: BEGIN STATEMENT SET; INSERT ...; END;
                return w3.startsWith("BEGIN STATEMENT SET") ? "STATEMENT_SET" : "BEGIN";
            case "CREATE":
            case "REPLACE":
                return CTAS.matcher(sql).matches() ? "CTAS" : "DDL";
            case "DROP":
            case "ALTER":
            case "USE":
            case "LOAD":
            case "UNLOAD":
                return "DDL";
            default:
                return w1.isEmpty() ? head(sql, 1) : w1;
        }
    }

    private static String stripExecute(String sql) {
        String t = sql.trim();
        return head(t, 1).equals("EXECUTE") ? t.substring(7).trim() : t;
    }

    // ------------------------------------------------------------------ handlers

    // SET 'key' = 'value' | SET key = value  (quotes optional on either side)
    private static final Pattern SET =
            Pattern.compile(
                    "^SET\\s+('(?:[^']|'')*'|[^\\s=]+)\\s*=\\s*(.*)$",
                    Pattern.CASE_INSENSITIVE | Pattern.DOTALL);
    private static final Pattern RESET =
            Pattern.compile(
                    "^RESET(?:\\s+('(?:[^']|'')*'|\\S+))?\\s*$",
                    Pattern.CASE_INSENSITIVE | Pattern.DOTALL);

    private static String unquote(String s) {
        String t = s.trim();
        if (t.length() >= 2 && t.startsWith("'") && t.endsWith("'")) {
            return t.substring(1, t.length() - 1).replace("''", "'");
        }
        return t;
    }

    private static void applySet(TableEnvironment tableEnv, Statement st) {
        Matcher m = SET.matcher(st.sql.trim());
        if (!m.matches()) {
            throw fail(st, "expected SET 'key' = 'value'");
        }
        String key = unquote(m.group(1));
        String value = unquote(m.group(2));
        if (key.isEmpty()) {
            throw fail(st, "SET with an empty key");
        }
        tableEnv.getConfig().set(key, value);
        System.out.println("weir sql-runner: SET " + key + " = " + value);
    }

    private static void applyReset(TableEnvironment tableEnv, Statement st) {
        Matcher m = RESET.matcher(st.sql.trim());
        if (!m.matches() || m.group(1) == null) {
            throw fail(st, "expected RESET 'key' (RESET of all keys is not supported)");
        }
        String key = unquote(m.group(1));
        tableEnv.getConfig().getConfiguration().removeKey(key);
    }

    private static void executeDdl(TableEnvironment tableEnv, Statement st) {
        TableResult r;
        try {
            r = tableEnv.executeSql(st.sql);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(
                    "weir sql-runner: " + st.describe() + " failed: " + e.getMessage(), e);
        }
        if (r.getJobClient().isPresent()) {
            // Safety net: a "DDL" that started a job would leave a second, untracked job.
            throw fail(st, "this statement started a Flink job of its own; not allowed");
        }
    }

    private static void addInsert(StatementSet set, Statement st, String insert) {
        try {
            set.addInsertSql(insert);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(
                    "weir sql-runner: " + st.describe() + " failed: " + e.getMessage(), e);
        }
    }

    private static final Pattern EXEC_SET_HEAD =
            Pattern.compile(
                    "^(?:EXECUTE\\s+STATEMENT\\s+SET\\s+BEGIN|BEGIN\\s+STATEMENT\\s+SET)\\s*(.*)$",
                    Pattern.CASE_INSENSITIVE | Pattern.DOTALL);

    /**
     * {@code EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END;} was split at its inner ';'.
     * Re-assemble: the first piece carries the first INSERT after BEGIN, then INSERTs follow
     * until a piece that is just END. Returns the index of that END piece.
     */
    private static int addStatementSetBlock(StatementSet set, List<Statement> statements, int start) {
        Statement first = statements.get(start);
        Matcher m = EXEC_SET_HEAD.matcher(first.sql.trim());
        if (!m.matches()) {
            throw fail(first, "expected EXECUTE STATEMENT SET BEGIN ... END");
        }
        String rest = m.group(1).trim();
        if (!rest.isEmpty()) {
            if (!"INSERT".equals(classify(rest))) {
                throw fail(first, "only INSERT statements are allowed inside a STATEMENT SET");
            }
            addInsert(set, first, rest);
        }
        for (int i = start + 1; i < statements.size(); i++) {
            Statement st = statements.get(i);
            if (head(st.sql, 1).equals("END") && st.sql.trim().length() == 3) {
                return i;
            }
            if (!"INSERT".equals(classify(st.sql))) {
                throw fail(st, "only INSERT statements are allowed inside a STATEMENT SET");
            }
            addInsert(set, st, st.sql);
        }
        throw fail(first, "STATEMENT SET without END");
    }

    private static IllegalArgumentException fail(Statement st, String why) {
        return new IllegalArgumentException("weir sql-runner: " + st.describe() + ": " + why);
    }
}
