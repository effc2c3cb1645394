package dev.weir.testudf;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * A scalar function for weir's dependency tests: it lives in its own jar, shipped to Flink as a
 * job dependency ({@code spec.dependencies}), never on the cluster's classpath. A job that calls it
 * proves the class is loadable both when the SQL is planned (in {@code main()} on the JobManager)
 * and when records flow (on the TaskManager).
 */
public class Shout extends ScalarFunction {
    public String eval(String s) {
        return s == null ? null : s.toUpperCase(java.util.Locale.ROOT) + "!";
    }
}
