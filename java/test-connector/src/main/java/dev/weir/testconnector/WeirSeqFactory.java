package dev.weir.testconnector;

import org.apache.flink.connector.datagen.table.DataGenTableSourceFactory;

/**
 * A table connector of weir's own for dependency tests: {@code 'connector' = 'weir-test-seq'}.
 * It generates rows exactly like Flink's {@code datagen} connector (same options); what matters is
 * that Flink finds it only through {@code META-INF/services/org.apache.flink.table.factories.Factory}
 * of a jar shipped as a job dependency (served from a Maven repository in the tests).
 */
public class WeirSeqFactory extends DataGenTableSourceFactory {
    public static final String IDENTIFIER = "weir-test-seq";

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }
}
