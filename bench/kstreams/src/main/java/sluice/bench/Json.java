package sluice.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/** JSON values as Jackson trees: the serde and a few helpers. Null bytes are a null tree (a tombstone). */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();

    static final Serde<JsonNode> SERDE = Serdes.serdeFrom(new NodeSerializer(), new NodeDeserializer());

    private Json() {}

    /** A new, empty JSON object. */
    static ObjectNode object() {
        return MAPPER.createObjectNode();
    }

    /** The field as text, or null when the value or the field is missing or JSON null. */
    static String text(JsonNode value, String field) {
        if (value == null) {
            return null;
        }
        JsonNode f = value.get(field);
        return f == null || f.isNull() ? null : f.asText();
    }

    /** The field itself, JSON null when the value or the field is missing. */
    static JsonNode field(JsonNode value, String field) {
        JsonNode f = value == null ? null : value.get(field);
        return f == null ? MAPPER.nullNode() : f;
    }

    private static final class NodeSerializer implements Serializer<JsonNode> {
        @Override
        public byte[] serialize(String topic, JsonNode node) {
            if (node == null) {
                return null;
            }
            try {
                return MAPPER.writeValueAsBytes(node);
            } catch (IOException e) {
                throw new SerializationException("cannot write JSON for topic " + topic, e);
            }
        }
    }

    private static final class NodeDeserializer implements Deserializer<JsonNode> {
        @Override
        public JsonNode deserialize(String topic, byte[] bytes) {
            if (bytes == null) {
                return null;
            }
            try {
                return MAPPER.readTree(bytes);
            } catch (IOException e) {
                throw new SerializationException("cannot read JSON from topic " + topic, e);
            }
        }
    }
}
