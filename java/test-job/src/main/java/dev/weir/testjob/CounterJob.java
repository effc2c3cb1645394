package dev.weir.testjob;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

/**
 * Small stateful streaming job for weir's tests: a rate-limited generator of longs, keyed by
 * {@code value % 10}, a running count per key in {@link ValueState}, and a discarding sink.
 *
 * <p>Only APIs present in BOTH Flink 1.20.x and 2.x are used (DataGeneratorSource and the v2
 * DiscardingSink are in flink-dist of both; SourceFunction/SinkFunction are gone in 2.x;
 * {@code CheckpointConfig#setExternalizedCheckpointRetention} exists in both, the older
 * {@code enableExternalizedCheckpoints} does not exist in 2.x).
 *
 * <p>Arguments (all optional; unknown ones, e.g. {@code --topic x}, are ignored so tests can
 * change the arguments of a deployment freely):
 *
 * <pre>
 *   --name NAME                    job name (default weir-counter)
 *   --rate N                       records per second over all source subtasks (default 20)
 *   --checkpoint-interval-ms N     checkpoint interval (default 2000; 0 disables checkpointing)
 *   --fail-in-main MESSAGE         throw from main() before submitting (submission error tests)
 *   --sleep-in-main-ms N           sleep in main() before submitting: a slow submission, since
 *                                  Flink runs main() inside the POST /jars/{id}/run request
 *   --fail-after-records N         each counter subtask throws after N records (restart tests)
 *   --uid-suffix S                 appended to the uid of the stateful counter (state-check
 *                                  tests: its state no longer maps to the savepoint's)
 * </pre>
 */
public final class CounterJob {

    private CounterJob() {}

    public static void main(String[] args) throws Exception {
        String name = arg(args, "--name", "weir-counter");
        double rate = Double.parseDouble(arg(args, "--rate", "20"));
        long checkpointInterval = Long.parseLong(arg(args, "--checkpoint-interval-ms", "2000"));
        String failInMain = arg(args, "--fail-in-main", null);
        long failAfter = Long.parseLong(arg(args, "--fail-after-records", "-1"));
        long sleepInMain = Long.parseLong(arg(args, "--sleep-in-main-ms", "0"));
        String uidSuffix = arg(args, "--uid-suffix", "");

        if (failInMain != null) {
            throw new IllegalArgumentException("weir test job: --fail-in-main: " + failInMain);
        }
        if (sleepInMain > 0) {
            Thread.sleep(sleepInMain);
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        if (checkpointInterval > 0) {
            env.enableCheckpointing(checkpointInterval);
            // Keep the last checkpoint when the job is canceled so it can be restored from.
            env.getCheckpointConfig()
                    .setExternalizedCheckpointRetention(
                            ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION);
        }

        // Checkpointed source: its split state (position in the sequence) is part of every
        // checkpoint/savepoint. Long.MAX_VALUE records = effectively unbounded.
        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        index -> index,
                        Long.MAX_VALUE,
                        RateLimiterStrategy.perSecond(rate),
                        Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "numbers")
                .uid("weir-numbers")
                .name("numbers")
                .map(new ToKeyed())
                .uid("weir-to-keyed")
                .name("to-keyed")
                .keyBy(t -> t.f0, Types.LONG)
                .process(new CountPerKey(failAfter))
                .uid("weir-count-per-key" + uidSuffix)
                .name("count-per-key")
                .sinkTo(new DiscardingSink<>())
                .uid("weir-discard")
                .name("discard");

        env.execute(name);
    }

    /** value -> (value % 10, 1). */
    static final class ToKeyed implements MapFunction<Long, Tuple2<Long, Long>> {
        @Override
        public Tuple2<Long, Long> map(Long value) {
            return Tuple2.of(value % 10, 1L);
        }
    }

    /** Running sum per key kept in keyed ValueState (so savepoints carry real state). */
    static final class CountPerKey
            extends KeyedProcessFunction<Long, Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private final long failAfter;
        private transient ValueState<Long> sum;
        private transient long seen;

        CountPerKey(long failAfter) {
            this.failAfter = failAfter;
        }

        @Override
        public void processElement(
                Tuple2<Long, Long> in, Context ctx, Collector<Tuple2<Long, Long>> out)
                throws Exception {
            if (sum == null) {
                // Lazily, because open(Configuration) is gone in 2.x and open(OpenContext) is
                // not in older versions; getState works from any processElement call.
                sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Types.LONG));
            }
            if (failAfter >= 0 && ++seen > failAfter) {
                throw new RuntimeException(
                        "weir test job: --fail-after-records " + failAfter + " reached");
            }
            Long current = sum.value();
            long next = (current == null ? 0L : current) + in.f1;
            sum.update(next);
            out.collect(Tuple2.of(in.f0, next));
        }
    }

    private static String arg(String[] args, String key, String def) {
        String value = def;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals(key) && i + 1 < args.length) {
                value = args[i + 1];
            } else if (args[i].startsWith(key + "=")) {
                value = args[i].substring(key.length() + 1);
            }
        }
        return value;
    }
}
